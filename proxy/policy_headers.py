"""Headers per app: `headers` set on responses (the app's own of those names are replaced),
`request_headers` set on requests (the client's replaced), and the `security_headers` preset
(HSTS on TLS, X-Content-Type-Options, Referrer-Policy, X-Frame-Options; `headers` win)."""

from __future__ import annotations

from .policy import HSTS_PRESET, SECURITY_HEADERS, Policy


def lines_of(pairs: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs)


def names_of(pairs: tuple[tuple[str, str], ...]) -> frozenset[bytes]:
    return frozenset(n.lower().encode("latin-1") for n, _ in pairs)


def response_pairs(policy: Policy) -> tuple[tuple[str, str], ...]:
    """`headers`, plus the preset's where `headers` does not name them."""
    pairs = list(policy.headers)
    if policy.security_headers:
        given = {n.lower() for n, _ in pairs}
        for name, value in SECURITY_HEADERS:
            if name.lower() not in given:
                pairs.append((name, value))
    return tuple(pairs)


def hsts_preset(policy: Policy) -> bytes:
    """The HSTS line security_headers adds on TLS responses (unless `headers` sets one)."""
    if not policy.security_headers or any(n.lower() == "strict-transport-security" for n, _ in policy.headers):
        return b""
    return b"Strict-Transport-Security: max-age=%d\r\n" % HSTS_PRESET


def without(headers: list[tuple[bytes, bytes]], names: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    """Response headers minus those `names` (lower-case)."""
    return [h for h in headers if h[0].lower() not in names]


def request_lines(lines: list[bytes], names: frozenset[bytes], add: bytes) -> list[bytes]:
    """Forwarded request header lines minus those `names`, plus `add`."""
    kept = [line for line in lines if line.split(b":", 1)[0].lower() not in names]
    kept.append(add)
    return kept
