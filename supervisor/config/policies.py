"""The edge-policy keys of `[apps.NAME]` (docs/config.md, "Edge policies") -> a `proxy.policy.Policy`.

Every key is checked here with one line per problem naming the file and key: header names,
CIDRs, redirect statuses, and the basic-auth users file (it must exist, be readable and hold
bcrypt entries as `htpasswd -B` writes them; the entries go into the Policy, so a changed file
is picked up by `dockyard reload` as a reroute).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from proxy.policy import REDIRECT_STATUSES, BasicAuth, Policy, Redirect
from proxy.policy_auth import read_htpasswd
from supervisor.config import validators
from supervisor.config.fields import Table, is_int, show
from supervisor.model import defaults

# Request headers the proxy owns (routing, framing, forwarding): `request_headers` may not set them.
RESERVED_REQUEST = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "te", "trailer",
    "keep-alive", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "x-real-ip", "x-request-id", "x-forwarded-prefix",
})
RESERVED_RESPONSE = frozenset({"content-length", "transfer-encoding", "connection", "upgrade", "keep-alive",
                               "te", "trailer"})
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")


def app_policy(t: Table, base: Path, path_prefix: str) -> Policy:
    strip = t.boolean("strip_prefix", defaults.STRIP_PREFIX)
    if strip and path_prefix == "/":
        t.error("strip_prefix", 'needs a path_prefix other than "/" (there is nothing to strip)')
    canonical = t.string("canonical_host")
    if canonical is not None:
        message = validators.host_pattern(canonical)
        if message or canonical.startswith("*."):
            t.error("canonical_host", message or f"must be one host name, not a wildcard, got {show(canonical)}")
            canonical = None
    limits = _limits(t)
    return Policy(
        buffer_requests=t.boolean("buffer_requests", defaults.BUFFER_REQUESTS),
        buffer_responses=t.boolean("buffer_responses", defaults.BUFFER_RESPONSES),
        canonical_host=(canonical or "").lower(),
        redirects=_redirects(t),
        strip_prefix=strip,
        basic_auth=basic_auth(t.table("basic_auth"), base),
        allow=_cidrs(t, "allow"),
        deny=_cidrs(t, "deny"),
        compress=t.boolean("compress", defaults.COMPRESS),
        headers=_headers(t, "headers", RESERVED_RESPONSE),
        request_headers=_headers(t, "request_headers", RESERVED_REQUEST),
        security_headers=t.boolean("security_headers", defaults.SECURITY_HEADERS),
        **limits,
    )


def _cidrs(t: Table, name: str) -> tuple[str, ...]:
    values = t.strings(name) or ()
    good: list[str] = []
    for i, value in enumerate(values):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            t.out.error(f"{t.key(name)}[{i}]", f"{show(value)} is not an IP address or CIDR network (e.g. \"10.0.0.0/8\")")
            continue
        good.append(value)
    return tuple(good)


def _headers(t: Table, name: str, reserved: frozenset[str]) -> tuple[tuple[str, str], ...]:
    table = t.table(name)
    pairs: list[tuple[str, str]] = []
    for key in list(table.data) if table else ():
        assert table is not None
        value = table.raw(key)
        if not key or not set(key) <= _TOKEN:
            table.error(key, "is not a header name (letters, digits and -)")
        elif key.lower() in reserved:
            table.error(key, "is set by the proxy itself and cannot be overridden")
        elif not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            table.bad(key, "a string without line breaks")
        else:
            pairs.append((key, value))
    return tuple(pairs)


def _redirects(t: Table) -> tuple[Redirect, ...]:
    tables = t.tables("redirects") or []
    result: list[Redirect] = []
    for r in tables:
        source = r.string("from")
        to = r.string("to")
        for required, value in (("from", source), ("to", to)):
            if value is None and required not in r.data:
                r.error(required, "is required")
        if source is not None and not source.startswith("/"):
            r.error("from", f"must be a path starting with \"/\", got {show(source)}")
            source = None
        if to is not None and any(c in to for c in "\r\n\0 "):
            r.error("to", f"must be a path or URL without spaces or line breaks, got {show(to)}")
            to = None
        status = defaults.REDIRECT_STATUS
        if r.has("status"):
            value = r.raw("status")
            if is_int(value) and value in REDIRECT_STATUSES:
                status = int(value)
            else:
                r.bad("status", "one of " + ", ".join(str(s) for s in REDIRECT_STATUSES))
        exact = r.boolean("exact", False)
        r.finish()
        if source is not None and to is not None:
            result.append(Redirect(source, to, status, exact))
    return tuple(result)


def basic_auth(a: Table | None, base: Path, default_realm: str = defaults.AUTH_REALM) -> BasicAuth | None:
    """A basic-auth table (an app's `basic_auth`, the server's `dashboard_auth`): its users file
    read and checked now; None when absent or wrong (the problems are in `a.out`)."""
    if a is None:
        return None
    name = a.string("users_file")
    if name is None and not a.has("users_file"):
        a.error("users_file", "is required (a file written by `htpasswd -B`)")
    realm = a.string("realm", default_realm) or default_realm
    if '"' in realm or any(ord(c) < 32 for c in realm):
        a.error("realm", f"must not contain quotes or control characters, got {show(realm)}")
    exempt = a.strings("exempt") or ()
    for i, prefix in enumerate(exempt):
        if not prefix.startswith("/"):
            a.out.error(f"{a.key('exempt')}[{i}]", f"must be a path starting with \"/\", got {show(prefix)}")
    a.finish()
    if name is None:
        return None
    path = os.path.normpath(base / name)
    key = a.key("users_file")
    try:
        users = read_htpasswd(path)
    except FileNotFoundError:
        a.out.error(key, f"{path!r} does not exist")
        return None
    except OSError as exc:
        a.out.error(key, f"{path!r} cannot be read: {exc.strerror or exc}")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        a.out.error(key, f"{path!r}: {exc}")
        return None
    if not users:
        a.out.error(key, f"{path!r} has no users")
        return None
    return BasicAuth(path, users, realm, exempt)


def _limits(t: Table) -> dict[str, Any]:
    """`[apps.NAME.proxy]`: this app's max_body_size, timeouts and request buffer size."""
    p = t.table("proxy")
    if p is None:
        return {}
    found: dict[str, Any] = {}
    for name in ("max_body_size", "request_buffer_memory"):
        if p.has(name):
            value = p.raw(name)
            if is_int(value) and value >= 0:
                found[name] = int(value)
            else:
                p.bad(name, "an integer number of bytes >= 0")
    for name in ("upstream_response_timeout", "client_body_timeout"):
        seconds = p.optional_number(name, positive=True)
        if seconds is not None:
            found[name] = seconds
    p.finish()
    return found
