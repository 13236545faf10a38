"""Every closed set of words in the config, each written once: a `Literal` alias, and the tuple
of its values derived from it (`typing.get_args`), which the config loader checks against.

The load balancing modes belong to the proxy (proxy.routes), the bottom layer; they are
re-exported here so the supervisor has one place to import its enums from.
"""

from __future__ import annotations

from typing import Literal, get_args

from proxy.routes import Balance

Network = Literal["bridge", "host"]
CheckType = Literal["startup", "liveness", "readiness"]
CheckScheme = Literal["http", "https"]
ConcurrencyPolicy = Literal["allow", "forbid", "replace"]  # Dokku's app.json cron option
CronSource = Literal["config", "app.json"]
TlsMode = Literal["off", "manual", "acme"]
Scheduler = Literal["docker", "swarm"]  # Dokku's scheduler:set: containers, or Swarm services
PullPolicy = Literal["missing", "always"]  # when a deploy pulls its image from a registry

NETWORKS: tuple[Network, ...] = get_args(Network)
BALANCES: tuple[Balance, ...] = get_args(Balance)
CHECK_TYPES: tuple[CheckType, ...] = get_args(CheckType)
CHECK_SCHEMES: tuple[CheckScheme, ...] = get_args(CheckScheme)
CONCURRENCY_POLICIES: tuple[ConcurrencyPolicy, ...] = get_args(ConcurrencyPolicy)
TLS_MODES: tuple[TlsMode, ...] = get_args(TlsMode)
SCHEDULERS: tuple[Scheduler, ...] = get_args(Scheduler)
PULL_POLICIES: tuple[PullPolicy, ...] = get_args(PullPolicy)

__all__ = [
    "BALANCES", "CHECK_SCHEMES", "CHECK_TYPES", "CONCURRENCY_POLICIES", "NETWORKS", "PULL_POLICIES", "SCHEDULERS",
    "TLS_MODES", "Balance", "CheckScheme", "CheckType", "ConcurrencyPolicy", "CronSource", "Network", "PullPolicy",
    "Scheduler", "TlsMode",
]
