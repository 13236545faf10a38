"""Answers the proxy gives itself, before routing: ACME HTTP-01 tokens, HTTP->HTTPS redirects, HSTS.

Installed on the proxy (`proxy.edge`) only once TLS is configured; without it the request
path does not change. The exchange asks it once per request, with the route already looked up:
- on the plain listener, `/.well-known/acme-challenge/<token>` is answered from `challenges`
  (404 for an unknown token), whatever the host and its redirect setting;
- on the plain listener, a service with `tls_redirect` gets a 308 to the https URL, built from
  the validated, normalized host and the origin-form target only (never the raw Host header);
- on the TLS listener, a service with `hsts` gets `Strict-Transport-Security` on its responses
  and on the proxy's own error pages (`hsts_line`).

It decides; the exchange writes the answer (so this module does not import the exchange).
"""

from __future__ import annotations

from .routes import Service

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"

# What Edge.answer decides (with the body or Location that goes with it).
CHALLENGE, UNKNOWN_CHALLENGE, REDIRECT = 200, 404, 308


def hsts_line(max_age: int) -> bytes:
    return b"Strict-Transport-Security: max-age=%d\r\n" % max_age


class Edge:
    def __init__(self, tls_port: int = 443) -> None:
        self.tls_port = tls_port
        self.challenges: dict[str, str] = {}  # token -> key authorization (set by the ACME client)

    def answer(self, service: Service | None, host: str, path: str, url: bytes) -> tuple[int, bytes] | None:
        """On the plain listener: (CHALLENGE, key authorization), (UNKNOWN_CHALLENGE, b""),
        (REDIRECT, location) or None (forward the request). `host` is normalized and valid,
        `url` is in origin-form."""
        if path.startswith(CHALLENGE_PREFIX):
            validation = self.challenges.get(path[len(CHALLENGE_PREFIX):])
            if validation is None:
                return UNKNOWN_CHALLENGE, b""
            return CHALLENGE, validation.encode()
        if service is None or not service.tls_redirect:
            return None
        port = "" if self.tls_port == 443 else f":{self.tls_port}"
        return REDIRECT, f"https://{host}{port}".encode() + url
