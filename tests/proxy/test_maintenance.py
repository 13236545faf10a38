"""Per-app answers of the proxy itself (#20): maintenance mode (503 with the app's message and
Retry-After, answered before a target is claimed) and an app's own error pages."""

from __future__ import annotations

import json

from proxy.routes import Maintenance

from .utils import backend, free_port, parse_response, raw_request, running_proxy

GET = b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
GET_JSON = b"GET /x HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nConnection: close\r\n\r\n"


async def test_maintenance_answers_503_with_message_and_retry_after_then_serves_again() -> None:
    async with backend(name="app") as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        assert parse_response(await raw_request(proxy.port, GET))[0] == 200
        proxy.set_app("a", ["h"], [target], maintenance=Maintenance("Back at <5pm>", 600))
        status, headers, body = parse_response(await raw_request(proxy.port, GET))
        assert (status, headers["retry-after"]) == (503, "600")
        assert headers["content-type"].startswith("text/html") and b"Back at &lt;5pm&gt;" in body
        status, headers, body = parse_response(await raw_request(proxy.port, GET_JSON))
        assert status == 503 and json.loads(body)["message"] == "Back at <5pm>"
        assert proxy.inflight() == {} and proxy.stats("a")["status"]["5xx"] == 2
        proxy.set_app("a", ["h"], [target], maintenance=Maintenance())
        status, headers, body = parse_response(await raw_request(proxy.port, GET))
        assert status == 503 and "retry-after" not in headers and b"down for maintenance" in body
        proxy.set_app("a", ["h"], [target])
        assert parse_response(await raw_request(proxy.port, GET))[0] == 200


async def test_an_apps_own_error_pages() -> None:
    pages = {404: b"<p>our 404</p>", 502: b"<p>our 502</p>", 503: b"<p>our 503</p>"}
    async with running_proxy() as proxy:
        proxy.set_app("a", ["h"], [], path_prefix="/x", error_pages=pages)
        status, headers, body = parse_response(await raw_request(proxy.port, GET))
        assert (status, body) == (503, b"<p>our 503</p>")
        assert headers["content-type"] == "text/html; charset=utf-8"
        status, _headers, body = parse_response(await raw_request(proxy.port, GET_JSON))
        assert status == 503 and json.loads(body)["status"] == 503  # JSON clients keep JSON
        other = b"GET /elsewhere HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        assert parse_response(await raw_request(proxy.port, other))[2] == b"<p>our 404</p>"
        proxy.set_app("a", ["h"], [f"127.0.0.1:{free_port()}"], path_prefix="/x", error_pages=pages)
        assert parse_response(await raw_request(proxy.port, GET))[2] == b"<p>our 502</p>"
        proxy.set_app("a", ["h"], [], path_prefix="/x", error_pages=pages,
                      maintenance=Maintenance("", 30))  # no message: the app's 503 page
        status, headers, body = parse_response(await raw_request(proxy.port, GET))
        assert (status, headers["retry-after"], body) == (503, "30", b"<p>our 503</p>")
        unknown = b"GET / HTTP/1.1\r\nHost: nobody\r\nConnection: close\r\n\r\n"
        assert b"our 404" not in parse_response(await raw_request(proxy.port, unknown))[2]
