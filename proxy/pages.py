"""Small error pages: HTML by default, JSON when the client's Accept prefers application/json."""

from __future__ import annotations

import json
from http import HTTPStatus

MESSAGES: dict[int, str] = {
    400: "The request could not be understood.",
    401: "This app needs a user name and password.",
    403: "Access to this app is not allowed from your address.",
    404: "No app is configured for this host.",
    405: "This method is not allowed.",
    408: "The request took too long to arrive.",
    413: "The request body is too large.",
    431: "The request headers are too large.",
    502: "The app did not answer properly.",
    503: "The app has no running containers.",
    # 503 in maintenance mode: MAINTENANCE, unless `dockyard maintenance on --message` says more
    504: "The app took too long to answer.",
}


MAINTENANCE = "The app is down for maintenance."


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def prefers_json(accept: bytes | None) -> bool:
    """True when application/json has a higher q-value than text/html in Accept."""
    if not accept:
        return False
    best_json = best_html = -1.0
    for part in accept.split(b","):
        fields = part.strip().split(b";")
        mtype = fields[0].strip().lower()
        q = 1.0
        for f in fields[1:]:
            k, _, v = f.strip().partition(b"=")
            if k.strip() == b"q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if mtype in (b"application/json", b"application/*"):
            best_json = max(best_json, q)
        elif mtype in (b"text/html", b"text/*"):
            best_html = max(best_html, q)
    return best_json > 0 and best_json > best_html


def error_page(
    status: int, accept: bytes | None, request_id: bytes | None = None, *,
    message: str | None = None, page: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Return (content-type, body) of the page for `status`: `message` instead of the standard
    one (maintenance), `page` (an app's own HTML) for a client that does not prefer JSON."""
    phrase = reason(status)
    message = message or MESSAGES.get(status, phrase)
    if prefers_json(accept):
        doc: dict[str, object] = {"status": status, "error": phrase, "message": message}
        if request_id:
            doc["request_id"] = request_id.decode("latin-1")
        return b"application/json", json.dumps(doc, separators=(",", ":")).encode()
    if page is not None:
        return b"text/html; charset=utf-8", page
    message = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    html = (
        f"<!doctype html><html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{status} {phrase}</h1><p>{message}</p></body></html>\n"
    )
    return b"text/html; charset=utf-8", html.encode()


def error_response(
    status: int, accept: bytes | None, *, keep_alive: bool, head: bool = False, request_id: bytes | None = None,
    extra: bytes = b"", message: str | None = None, page: bytes | None = None,
) -> bytes:
    """A complete HTTP/1.1 response carrying the error page; `extra`: header lines to add (HSTS,
    Retry-After); `message` and `page` as error_page takes them."""
    ctype, body = error_page(status, accept, request_id, message=message, page=page)
    lines = [
        b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode()),
        b"Content-Type: %s\r\n" % ctype,
        b"Content-Length: %d\r\n" % len(body),
        b"Cache-Control: no-store\r\n",
    ]
    if request_id:
        lines.append(b"X-Request-Id: %s\r\n" % request_id)
    if extra:
        lines.append(extra)
    lines.append(b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    if not head:
        lines.append(body)
    return b"".join(lines)
