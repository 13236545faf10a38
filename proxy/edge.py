"""Answers the proxy gives itself, before routing: ACME HTTP-01 tokens, HTTP->HTTPS redirects, HSTS.

Installed on the proxy (`proxy.edge`) only once TLS is configured; without it the request
path does not change. Per request it costs one route lookup:
- on the plain listener, `/.well-known/acme-challenge/<token>` is answered from `challenges`
  (404 for an unknown token), whatever the host and its redirect setting;
- on the plain listener, a service with `tls_redirect` gets a 308 to the https URL;
- on the TLS listener, a service with `hsts` gets `Strict-Transport-Security` on its responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pages import error_response

if TYPE_CHECKING:
    from .exchange import Exchange

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def hsts_line(max_age: int) -> bytes:
    return b"Strict-Transport-Security: max-age=%d\r\n" % max_age


class Edge:
    def __init__(self, tls_port: int = 443) -> None:
        self.tls_port = tls_port
        self.challenges: dict[str, str] = {}  # token -> key authorization (set by the ACME client)

    def answer(self, ex: Exchange) -> bool:
        """Answer `ex` here (True) or let it be forwarded (False); may set `ex.extra_headers`."""
        client = ex.client
        if client.scheme == b"https":
            service = client.proxy.table.lookup(ex.host, ex.path)
            if service is not None and service.hsts is not None:
                ex.extra_headers = hsts_line(service.hsts)
            return False
        if ex.path.startswith(CHALLENGE_PREFIX):
            token = ex.path[len(CHALLENGE_PREFIX):]
            validation = self.challenges.get(token)
            keep = _keep(ex)
            if validation is None:
                _reply(ex, 404, error_response(404, ex.head.accept, keep_alive=keep,
                                               request_id=ex.head.request_id))
            else:
                body = validation.encode()
                _reply(ex, 200, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                                b"Cache-Control: no-store\r\n%s\r\n%s" % (len(body), _connection(keep), body))
            return True
        service = client.proxy.table.lookup(ex.host, ex.path)
        if service is None or not service.tls_redirect:
            return False
        port = "" if self.tls_port == 443 else f":{self.tls_port}"
        location = f"https://{ex.host}{port}".encode() + ex.url
        _reply(ex, 308, b"HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n%s\r\n"
               % (location, _connection(_keep(ex))))
        return True


def _keep(ex: Exchange) -> bool:
    """Keep the connection only when the request body (if any) was read in full."""
    ex.keep_alive = ex.keep_alive and ex.body_complete and not ex.client.closing
    return ex.keep_alive


def _connection(keep: bool) -> bytes:
    return b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"


def _reply(ex: Exchange, status: int, response: bytes) -> None:
    ex.status = status
    ex.started = True
    if ex.method == b"HEAD":
        response = response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    ex.client.write(response)
    ex._finish()
