"""Bad input: smuggling shapes get 400 and a closed connection; garbage never kills the server."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import Proxy, ProxyOptions

from .utils import backend, parse_response, raw_request, running_proxy

SHAPES = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "conflicting_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "cl_list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    "negative_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -3\r\n\r\nabc",
    "invalid_chunk_size": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\na\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n",
    "obs_fold_first": b"GET / HTTP/1.1\r\n X-A: 1\r\nHost: h\r\n\r\n",
    "te_not_chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n",
    "te_duplicate": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
    "bare_lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "missing_host": b"GET / HTTP/1.1\r\n\r\n",
    "double_host": b"GET / HTTP/1.1\r\nHost: h\r\nHost: other\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_smuggling_shape_rejected(name: str) -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        # a valid request after the bad one must never be answered on the same connection
        follow = b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
        raw = await raw_request(proxy.port, SHAPES[name] + follow)
        status, headers, _ = parse_response(raw)
        assert status == 400
        assert headers["connection"] == "close"
        assert raw.count(b"HTTP/1.1") == 1  # closed: nothing else answered


async def _serve_after_garbage(data: bytes) -> None:
    proxy = Proxy(ProxyOptions(client_header_timeout=0.05, client_idle_timeout=0.05))
    async with backend() as target:
        proxy.set_app("a", ["h"], [target])
        await proxy.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(data)
            try:
                await writer.drain()
                async with asyncio.timeout(2):
                    await reader.read()
            except (ConnectionError, TimeoutError):
                pass
            writer.close()
            raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert parse_response(raw)[0] == 200
        finally:
            await proxy.stop(0.05)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.binary(min_size=1, max_size=300),
        st.builds(lambda a, b: b"GET /" + a + b" HTTP/1.1\r\nHost: h\r\n" + b + b"\r\n\r\n",
                  st.binary(max_size=40), st.binary(max_size=80)),
        st.builds(lambda b: b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + b,
                  st.binary(max_size=80)),
    )
)
def test_garbage_does_not_kill_the_proxy(data: bytes) -> None:
    asyncio.run(_serve_after_garbage(data))
