"""Redirects per app: `canonical_host` (any other host of the app: 301 there, path and query
kept) and `redirects` (`from` a path prefix, or exactly, `to` a path or URL, `$1` = the rest of
the path after the prefix). Matching uses the normalized path (as routing does). It decides; the
exchange writes the answer."""

from __future__ import annotations

from .policy import Policy, Redirect


def canonical(policy: Policy, host: str, url: bytes, scheme: bytes) -> bytes | None:
    """The Location for a request whose host is not the canonical one, else None."""
    want = policy.canonical_host
    if not want or host == want:
        return None
    return b"%s://%s%s" % (scheme, want.encode("latin-1"), url)


def _matches(r: Redirect, path: str) -> str | None:
    """The rest of the path after `r.source` when it matches, else None."""
    source = r.source
    if r.exact:
        return "" if path == source else None
    if path == source:
        return ""
    if source.endswith("/"):
        return path[len(source):] if path.startswith(source) else None
    if path.startswith(source) and path[len(source)] == "/":
        return path[len(source):]
    return None


def redirect(policy: Policy, path: str, url: bytes) -> tuple[int, bytes] | None:
    """(status, Location) of the first matching redirect, else None."""
    for r in policy.redirects:
        rest = _matches(r, path)
        if rest is None:
            continue
        to = r.to.replace("$1", rest.lstrip("/") if r.to.split("$1")[0].endswith("/") else rest)
        location = to.encode("latin-1", "replace")
        q = url.find(b"?")
        if q >= 0 and b"?" not in location:
            location += url[q:]
        return r.status, location
    return None
