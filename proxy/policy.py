"""A per-app edge policy: the frozen value a `Service` carries (see docs/proxy.md, "Per-app policies").

Plain data only (strings, numbers, tuples), so a route table can be sent to another process:
`Policy.from_dict(policy.to_dict())` is the same value. The steps that apply it live in one
module each (`policy_access`, `policy_redirects`, `policy_auth`, `policy_headers`,
`policy_buffer`, `policy_compress`); the exchange calls them after routing, and only for a
service whose `policy` is not None, so an app without one pays a single attribute check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUEST_BUFFER_MEMORY = 1 << 20  # request bodies above this go to a temporary file (0600)
COMPRESS_MIN_SIZE = 1024  # responses with a smaller Content-Length are not compressed
AUTH_REALM = "Restricted"
REDIRECT_STATUSES = (301, 302, 307, 308)
HSTS_PRESET = 31536000  # security_headers: Strict-Transport-Security max-age on TLS responses
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Frame-Options", "SAMEORIGIN"),
)


@dataclass(frozen=True, slots=True)
class Redirect:
    """`from` -> `to`: a prefix (`/old` matches `/old` and `/old/...`) unless `exact`; `$1` in
    `to` is the rest of the path after the prefix (query kept when `to` has none)."""

    source: str
    to: str
    status: int = 301
    exact: bool = False


@dataclass(frozen=True, slots=True)
class BasicAuth:
    users_file: str  # shown by `dockyard routes`; the entries below are what is checked
    users: tuple[tuple[str, str], ...]  # (user, bcrypt hash) as `htpasswd -B` writes them
    realm: str = AUTH_REALM
    exempt: tuple[str, ...] = ()  # path prefixes served without credentials


@dataclass(frozen=True, slots=True)
class Policy:
    buffer_requests: bool = True
    buffer_responses: bool = False
    request_buffer_memory: int = REQUEST_BUFFER_MEMORY
    canonical_host: str = ""
    redirects: tuple[Redirect, ...] = ()
    strip_prefix: bool = False  # the service's path_prefix is removed before forwarding
    basic_auth: BasicAuth | None = None
    allow: tuple[str, ...] = ()  # CIDRs; empty: everyone not denied
    deny: tuple[str, ...] = ()
    compress: bool = True  # compressible types, when the client accepts it and the app did not
    compress_min_size: int = COMPRESS_MIN_SIZE
    headers: tuple[tuple[str, str], ...] = ()  # set on responses (replacing the app's)
    request_headers: tuple[tuple[str, str], ...] = ()  # set on requests (replacing the client's)
    security_headers: bool = False
    max_body_size: int = -1  # -1: the proxy's (higher or lower than it); 0: unlimited
    upstream_response_timeout: float = 0.0  # 0.0: the proxy's
    client_body_timeout: float = 0.0

    def validate(self) -> list[tuple[str, str]]:
        """(key, message) for each bad value; make_service raises InvalidRouteError on any."""
        problems: list[tuple[str, str]] = []
        for key in ("allow", "deny"):
            for cidr in getattr(self, key):
                import ipaddress  # with the first CIDR only (proxy.forwarding)

                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    problems.append((key, f"not an address or CIDR network: {cidr!r}"))
        host = self.canonical_host
        if host and (not all(c.isalnum() or c in "-.:[]" for c in host) or host != host.lower()):
            problems.append(("canonical_host", f"must be a lower-case host name, got {host!r}"))
        for r in self.redirects:
            if not r.source.startswith("/"):
                problems.append(("redirects", f"from must start with '/', got {r.source!r}"))
            if r.status not in REDIRECT_STATUSES:
                problems.append(("redirects", f"status must be one of {REDIRECT_STATUSES}, got {r.status}"))
            if not r.to or any(c in r.to for c in "\r\n"):
                problems.append(("redirects", f"to must be a path or URL, got {r.to!r}"))
        for key in ("headers", "request_headers"):
            for name, value in getattr(self, key):
                if not name or not all(c.isalnum() or c in "-!#$%&'*+.^_`|~" for c in name):
                    problems.append((key, f"not a header name: {name!r}"))
                if any(c in value for c in "\r\n\0"):
                    problems.append((key, f"header {name} has a line break in its value"))
        if self.request_buffer_memory < 0:
            problems.append(("request_buffer_memory", "must be >= 0"))
        if self.basic_auth is not None and not self.basic_auth.users:
            problems.append(("basic_auth", f"no users in {self.basic_auth.users_file!r}"))
        if self.max_body_size < -1:
            problems.append(("max_body_size", "must be >= 0"))
        for key in ("upstream_response_timeout", "client_body_timeout"):
            if getattr(self, key) < 0:
                problems.append((key, "must be a positive number of seconds"))
        return problems

    def summary(self) -> dict[str, Any]:
        """The keys that differ from the defaults, without password hashes (`dockyard routes`)."""
        base = Policy().to_dict(secrets=False)
        return {k: v for k, v in self.to_dict(secrets=False).items() if v != base[k]}

    # -- serialisation (route tables sent to another process; `dockyard routes --json`) ---------
    def to_dict(self, *, secrets: bool = True) -> dict[str, Any]:
        """Plain data; `secrets=False` leaves out the password hashes (for display)."""
        doc: dict[str, Any] = {
            "buffer_requests": self.buffer_requests,
            "buffer_responses": self.buffer_responses,
            "request_buffer_memory": self.request_buffer_memory,
            "canonical_host": self.canonical_host,
            "redirects": [{"from": r.source, "to": r.to, "status": r.status, "exact": r.exact}
                          for r in self.redirects],
            "strip_prefix": self.strip_prefix,
            "basic_auth": None,
            "allow": list(self.allow),
            "deny": list(self.deny),
            "compress": self.compress,
            "compress_min_size": self.compress_min_size,
            "headers": dict(self.headers),
            "request_headers": dict(self.request_headers),
            "security_headers": self.security_headers,
            "max_body_size": self.max_body_size,
            "upstream_response_timeout": self.upstream_response_timeout,
            "client_body_timeout": self.client_body_timeout,
        }
        auth = self.basic_auth
        if auth is not None:
            users: Any = [list(u) for u in auth.users] if secrets else [u for u, _ in auth.users]
            doc["basic_auth"] = {"users_file": auth.users_file, "realm": auth.realm,
                                 "exempt": list(auth.exempt), "users": users}
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Policy:
        auth = doc.get("basic_auth")
        basic = None
        if auth:
            basic = BasicAuth(str(auth["users_file"]), _pairs(auth.get("users", ())),
                              str(auth.get("realm", AUTH_REALM)), tuple(auth.get("exempt", ())))
        redirects = tuple(Redirect(str(r["from"]), str(r["to"]), int(r.get("status", 301)), bool(r.get("exact", False)))
                          for r in doc.get("redirects", ()))
        return cls(
            buffer_requests=bool(doc.get("buffer_requests", True)),
            buffer_responses=bool(doc.get("buffer_responses", False)),
            request_buffer_memory=int(doc.get("request_buffer_memory", REQUEST_BUFFER_MEMORY)),
            canonical_host=str(doc.get("canonical_host", "")),
            redirects=redirects,
            strip_prefix=bool(doc.get("strip_prefix", False)),
            basic_auth=basic,
            allow=tuple(doc.get("allow", ())),
            deny=tuple(doc.get("deny", ())),
            compress=bool(doc.get("compress", True)),
            compress_min_size=int(doc.get("compress_min_size", COMPRESS_MIN_SIZE)),
            headers=_pairs(doc.get("headers", {})),
            request_headers=_pairs(doc.get("request_headers", {})),
            security_headers=bool(doc.get("security_headers", False)),
            max_body_size=int(doc.get("max_body_size", -1)),
            upstream_response_timeout=float(doc.get("upstream_response_timeout", 0.0)),
            client_body_timeout=float(doc.get("client_body_timeout", 0.0)),
        )


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, dict) else value
    return tuple((str(k), str(v)) for k, v in items)
