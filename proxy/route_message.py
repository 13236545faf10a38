"""One app's `Service` as the `table` message carries it to a proxy worker (proxy/worker.py).

An entry is the keyword arguments of `make_service`, read back from the Service itself (never
from a second copy of the caller's arguments), so the worker builds the Service the in-process
proxy would have: targets, rollout (release, canary targets and share), maintenance mode, the
app's error pages and its edge policy, basic-auth hashes included. The channel is a 0600 unix
socket in a 0700 directory of the supervisor's; nothing here goes anywhere else.

`plain()` walks any value field by field (dataclasses, tuples, bytes) into plain data without
knowing the fields: a worker answers `routes` with it, and tests compare that with the
in-process table, so a Service field this module forgets to carry shows up as a difference.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

from .policy import Policy
from .routes import Maintenance, Service, make_service


def entry(service: Service) -> dict[str, Any]:
    """The table message's entry for `service` (JSON-ready: error pages in base64)."""
    rollout = service.rollout
    canary = rollout.canary if rollout is not None else None
    maintenance = service.maintenance
    return {
        "app": service.app,
        "hosts": list(service.hosts),
        "targets": list(rollout.stable.targets if rollout is not None else service.targets),
        "path_prefix": service.path_prefix,
        "balance": service.balance,
        "tls_redirect": service.tls_redirect,
        "hsts": service.hsts,
        "release": rollout.release if rollout is not None else "",
        "canary_release": rollout.canary_release if rollout is not None else "",
        "canary_targets": list(canary.targets) if canary is not None else [],
        "canary_percent": rollout.percent if rollout is not None else 0.0,
        "maintenance": ({"message": maintenance.message, "retry_after": maintenance.retry_after}
                        if maintenance is not None else None),
        "error_pages": {str(status): base64.b64encode(html).decode() for status, html in service.pages},
        "policy": service.policy.to_dict(secrets=True) if service.policy is not None else None,
    }


def service(doc: Mapping[str, Any]) -> Service:
    """The Service of a table message's entry (validated again by make_service)."""
    maintenance = doc["maintenance"]
    policy = doc["policy"]
    return make_service(
        doc["app"], doc["hosts"], doc["targets"], doc["path_prefix"], doc["balance"], doc["tls_redirect"],
        doc["hsts"], doc["release"], doc["canary_release"], doc["canary_targets"], doc["canary_percent"],
        Maintenance(maintenance["message"], maintenance["retry_after"]) if maintenance is not None else None,
        {int(status): base64.b64decode(html) for status, html in doc["error_pages"].items()},
        policy=Policy.from_dict(policy) if policy is not None else None,
    )


def plain(value: Any) -> Any:
    """Every compared field of a dataclass (recursively), tuples as lists, bytes as base64."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
