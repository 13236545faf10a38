"""TLS state the workers need, kept by the supervisor and sent on every change.

`CertFeed` stands where the TLS code (supervisor/tls/acme.py) expects the proxy's `CertStore`:
it validates each certificate in the supervisor (a bad file fails there, before anything
changes), keeps the file names, and calls `changed` so the pool sends the `certs` message.
Each install is numbered, so a worker reads a renewed or rotated file again under the same name.
`ChallengeFeed` is the ACME client's `edge.challenges` dict, sent as a `challenges` message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from proxy.tls import CertEntry, CertStore


class CertFeed:
    def __init__(self, changed: Callable[[], None]) -> None:
        self._store = CertStore()
        self._files: dict[str, tuple[list[str], str, str, int]] = {}
        self._installs = 0  # numbers each install: a rotated file (same name) is read again
        self._changed = changed

    @property
    def default(self) -> str | None:
        return self._store.default

    @default.setter
    def default(self, name: str | None) -> None:
        self._store.default = name
        self._changed()

    def install(self, name: str, hosts: Iterable[str], certfile: str, keyfile: str) -> None:
        hosts = list(hosts)
        self._store.install(name, hosts, certfile, keyfile)  # raises before anything changes
        self._installs += 1
        self._files[name] = (hosts, certfile, keyfile, self._installs)
        self._changed()

    def remove(self, name: str) -> None:
        self._store.remove(name)
        if self._files.pop(name, None) is not None:
            self._changed()

    def names(self) -> list[str]:
        return self._store.names()

    def entry(self, name: str) -> CertEntry | None:
        return self._store.entry(name)

    def message(self) -> dict[str, Any]:
        entries = [{"name": n, "hosts": h, "certfile": c, "keyfile": k, "version": v}
                   for n, (h, c, k, v) in self._files.items()]
        return {"op": "certs", "entries": entries, "default": self._store.default}


class ChallengeFeed(dict[str, str]):
    """token -> key authorization; every change is sent to the workers."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__()
        self._changed = changed

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        value = super().pop(key, *default)
        self._changed()
        return value

    def message(self) -> dict[str, Any]:
        return {"op": "challenges", "tokens": dict(self)}


class EdgeFeed:
    """What `Proxy.enable_edge()` returns, for the ACME client: its challenges, sent on."""

    def __init__(self, changed: Callable[[], None], tls_port: int) -> None:
        self.challenges = ChallengeFeed(changed)
        self.tls_port = tls_port
