"""The route table: an immutable value mapping hosts (and path prefixes) to services."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, cast

from .errors import InvalidRouteError, RouteConflictError
from .policy import Policy
from .policy_steps import PolicySteps

Balance = Literal["round_robin", "least_inflight"]
BALANCES: tuple[Balance, ...] = ("round_robin", "least_inflight")


def _empty() -> Mapping[str, tuple[Service, ...]]:
    return MappingProxyType({})


ERROR_PAGE_STATUSES = (404, 502, 503, 504)  # an app's own pages for the proxy's answers


@dataclass(frozen=True, slots=True)
class Maintenance:
    """An app in maintenance mode: the proxy answers 503 with `message` (and Retry-After),
    before any target is claimed; its containers keep running."""

    message: str = ""
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """One app's routes: the hosts it answers, its path prefix and its targets."""

    app: str
    hosts: tuple[str, ...]
    path_prefix: str
    targets: tuple[str, ...]
    balance: Balance = "round_robin"
    tls_redirect: bool = False  # plain-listener requests get a 308 to https (see proxy/edge.py)
    hsts: int | None = None  # Strict-Transport-Security max-age on TLS responses
    rollout: Rollout | None = None  # which release each target serves, a canary's share (rollout.py)
    maintenance: Maintenance | None = None
    pages: tuple[tuple[int, bytes], ...] = ()  # (status, the app's own HTML page)

    def page(self, status: int) -> bytes | None:
        for code, html in self.pages:
            if code == status:
                return html
        return None
    policy: Policy | None = None  # per-app edge policy (proxy/policy.py); None: none, no cost
    steps: PolicySteps | None = field(default=None, compare=False)  # derived from policy

    def matches_path(self, path: str) -> bool:
        prefix = self.path_prefix
        if prefix == "/" or path == prefix:
            return True
        return path.startswith(prefix) and (prefix.endswith("/") or path[len(prefix)] in "/?")


@dataclass(frozen=True, slots=True)
class Rollout:
    """An app's targets split by release: the serving one and, during a canary, the new one
    with its share of new clients (percent). `stable` and `canary` are the app's Service
    narrowed to each group's targets; proxy/rollout.py chooses between them per request."""

    release: str
    stable: Service
    canary_release: str = ""
    canary: Service | None = None
    percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """What Proxy.replace_routes takes for one app: the arguments of Proxy.set_app as a value."""

    hosts: tuple[str, ...]
    targets: tuple[str, ...]
    path_prefix: str = "/"
    balance: str = "round_robin"
    tls_redirect: bool = False
    hsts: int | None = None
    release: str = ""
    canary_release: str = ""
    canary_targets: tuple[str, ...] = ()
    canary_percent: float = 0.0
    maintenance: Maintenance | None = None
    error_pages: Mapping[int, bytes] | None = None
    policy: Policy | None = None

    def service(self, app: str) -> Service:
        """The app's Service, validated as set_app validates it (InvalidRouteError)."""
        return make_service(app, self.hosts, self.targets, self.path_prefix, self.balance,
                            self.tls_redirect, self.hsts, self.release, self.canary_release,
                            self.canary_targets, self.canary_percent, self.maintenance,
                            self.error_pages, policy=self.policy)


def normalize_host(host: str) -> str:
    """Lower-case, strip the port and a trailing dot: 'Example.COM:8080' -> 'example.com'."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".")


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normal_path(path: str) -> str:
    """The path routing matches (forwarding keeps the original): percent-encoded unreserved
    characters decoded (`/%61pi` -> `/api`), then dot-segments resolved (`/api/../internal` ->
    `/internal`, also when spelled `%2e%2e`), as RFC 3986 6.2.2 normalizes a URI."""
    if "%" not in path and "/." not in path:
        return path  # the common case: nothing to do
    if "%" in path:
        parts = path.split("%")
        out = [parts[0]]
        for part in parts[1:]:
            code = part[:2]
            char = chr(int(code, 16)) if len(code) == 2 and _is_hex(code) else ""
            if char and char in _UNRESERVED:
                out.append(char + part[2:])
            else:
                out.append("%" + part)
        path = "".join(out)
    if "/." not in path:
        return path
    segments: list[str] = []
    pieces = path.split("/")
    for piece in pieces[1:]:
        if piece == "..":
            if segments:
                segments.pop()
        elif piece != ".":
            segments.append(piece)
    trailing = pieces[-1] in (".", "..")
    return "/" + "/".join(segments) + ("/" if trailing and segments else "")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


_HOST_KEYS: dict[bytes, str] = {}
HOST_KEYS_MAX = 4096


def host_key(raw: bytes) -> str:
    """normalize_host of a raw Host header value, memoised (bounded: cleared when full)."""
    key = _HOST_KEYS.get(raw)
    if key is None:
        if len(_HOST_KEYS) >= HOST_KEYS_MAX:
            _HOST_KEYS.clear()
        key = _HOST_KEYS[raw] = normalize_host(raw.decode("latin-1"))
    return key


def _check_target(target: str) -> str:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRouteError(f"target must be 'HOST:PORT', got {target!r}")
    return target


def make_service(
    app: str,
    hosts: Sequence[str],
    targets: Sequence[str],
    path_prefix: str = "/",
    balance: str = "round_robin",
    tls_redirect: bool = False,
    hsts: int | None = None,
    release: str = "",
    canary_release: str = "",
    canary_targets: Sequence[str] = (),
    canary_percent: float = 0.0,
    maintenance: Maintenance | None = None,
    error_pages: Mapping[int, bytes] | None = None,
    policy: Policy | None = None,
) -> Service:
    """Validate and normalise the arguments of Proxy.set_app into a Service."""
    if not app:
        raise InvalidRouteError("app name must not be empty")
    if balance not in BALANCES:
        raise InvalidRouteError(f"balance must be one of {BALANCES}, got {balance!r}")
    if not path_prefix.startswith("/"):
        raise InvalidRouteError(f"path_prefix must start with '/', got {path_prefix!r}")
    norm: list[str] = []
    for host in hosts:
        h = normalize_host(host)
        if not h or (h.startswith("*") and not h.startswith("*.")) or "*" in h[1:]:
            raise InvalidRouteError(f"host must be 'name' or '*.suffix', got {host!r}")
        if h not in norm:
            norm.append(h)
    if hsts is not None and (isinstance(hsts, bool) or hsts < 0):
        raise InvalidRouteError(f"hsts must be a max-age >= 0 or None, got {hsts!r}")
    pages = tuple(sorted((error_pages or {}).items()))
    for status, _html in pages:
        if status not in ERROR_PAGE_STATUSES:
            raise InvalidRouteError(f"error pages are for {ERROR_PAGE_STATUSES}, got {status!r}")
    if policy is not None:
        problems = policy.validate()
        if problems:
            raise InvalidRouteError("policy: " + "; ".join(f"{k}: {m}" for k, m in problems))
    if path_prefix != "/" and path_prefix.endswith("/"):
        path_prefix = path_prefix.rstrip("/") or "/"
    service = Service(
        app=app,
        hosts=tuple(norm),
        path_prefix=path_prefix,
        targets=tuple(_check_target(t) for t in targets),
        balance=cast(Balance, balance),
        tls_redirect=tls_redirect,
        hsts=hsts,
        maintenance=maintenance,
        pages=pages,
        policy=policy,
        steps=PolicySteps(policy) if policy is not None else None,
    )
    if not release:
        if canary_release:
            raise InvalidRouteError("canary_release needs the serving release")
        return service
    if not canary_release:
        return replace(service, rollout=Rollout(release, service))
    if canary_release == release:
        raise InvalidRouteError(f"canary_release must differ from release {release!r}")
    if not 0.0 <= canary_percent <= 100.0:
        raise InvalidRouteError(f"canary_percent must be 0-100, got {canary_percent!r}")
    canary = replace(service, targets=tuple(_check_target(t) for t in canary_targets))
    both = service.targets + tuple(t for t in canary.targets if t not in service.targets)
    rollout = Rollout(release, service, canary_release, canary, float(canary_percent))
    return replace(service, targets=both, rollout=rollout)


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Immutable: every change builds a new table. Lookups never block."""

    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))
    exact: Mapping[str, tuple[Service, ...]] = field(default_factory=_empty)
    wildcard: Mapping[str, tuple[Service, ...]] = field(default_factory=_empty)  # key: ".example.com"
    suffixes: tuple[str, ...] = ()  # wildcard keys, longest first

    @classmethod
    def build(cls, services: Mapping[str, Service]) -> RouteTable:
        exact: dict[str, list[Service]] = {}
        wildcard: dict[str, list[Service]] = {}
        for svc in services.values():
            for host in svc.hosts:
                bucket = wildcard.setdefault(host[1:], []) if host.startswith("*.") else exact.setdefault(host, [])
                for other in bucket:
                    if other.path_prefix == svc.path_prefix:
                        raise RouteConflictError(
                            f"host={host} path_prefix={svc.path_prefix} claimed by app={other.app} and app={svc.app}"
                        )
                bucket.append(svc)

        return cls(
            services=MappingProxyType(dict(services)),
            exact=_longest_prefix_first(exact),
            wildcard=_longest_prefix_first(wildcard),
            suffixes=tuple(sorted(wildcard, key=len, reverse=True)),
        )

    def with_service(self, service: Service) -> RouteTable:
        services = dict(self.services)
        services[service.app] = service
        return RouteTable.build(services)

    def replacing(self, changes: Mapping[str, Service | None]) -> RouteTable:
        """This table with each app in `changes` given its new service (None: removed), checked
        as a whole: a host that moves from one app to another in `changes` is no conflict."""
        services = dict(self.services)
        for app, service in changes.items():
            if service is None:
                services.pop(app, None)
            else:
                services[app] = service
        return RouteTable.build(services)

    def without_app(self, app: str) -> RouteTable:
        services = dict(self.services)
        services.pop(app, None)
        return RouteTable.build(services)

    def lookup(self, host: str, path: str) -> Service | None:
        """Exact host first, then the longest wildcard; within a host the longest prefix."""
        candidates = self.exact.get(host)
        if candidates is not None:
            for svc in candidates:
                if svc.matches_path(path):
                    return svc
        for suffix in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                for svc in self.wildcard[suffix]:
                    if svc.matches_path(path):
                        return svc
        return None

    def lookup_host(self, host: str) -> Service | None:
        """An app routed for `host` whatever the path (its own 404 page), exact host first."""
        candidates = self.exact.get(host)
        if candidates:
            return candidates[-1]
        for suffix in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                return self.wildcard[suffix][-1]
        return None

    def targets(self) -> frozenset[str]:
        return frozenset(t for svc in self.services.values() for t in svc.targets)


def _prefix_length(service: Service) -> int:
    return len(service.path_prefix)


def _longest_prefix_first(d: dict[str, list[Service]]) -> Mapping[str, tuple[Service, ...]]:
    return MappingProxyType({k: tuple(sorted(v, key=_prefix_length, reverse=True)) for k, v in d.items()})
