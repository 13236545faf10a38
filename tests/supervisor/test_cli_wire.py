"""cli/wire.py: the CLI's HTTP/1.1 over a unix socket, against canned answers (each byte of
the answer is what a test server thread sends, then it closes)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.cli import wire
from supervisor.cli.client import ControlClient
from supervisor.cli.wire import MAX_HEAD, Connection, WireError
from supervisor.model.errors import ControlError


class Canned:
    """A unix-socket server that answers each connection with `answer`, in `pieces` sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.requests: list[bytes] = []
        self.answer: list[bytes] = []

    def serve_one(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            got = b""
            while b"\r\n\r\n" not in got:
                got += conn.recv(65536)
            head, _, body = got.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + body)
            for piece in self.answer:
                conn.sendall(piece)

    def start(self, *answer: bytes) -> threading.Thread:
        self.answer = list(answer)
        thread = threading.Thread(target=self.serve_one, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def canned(tmp_path: Path) -> Iterator[Canned]:
    server = Canned(tmp_path / "c.sock")
    yield server
    server.server.close()


def ask(canned: Canned, *answer: bytes, body: bytes | None = b"{}") -> tuple[int, bytes]:
    thread = canned.start(*answer)
    conn = Connection(canned.path, 5.0)
    try:
        got = conn.request("POST", "/v1/x", body, {"Content-Type": "application/json"})
        return got.status, got.read()
    finally:
        conn.close()
        thread.join(5)


def test_the_request_is_plain_http_11(canned: Canned) -> None:
    assert ask(canned, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == (200, b"ok")
    assert canned.requests[0] == (b"POST /v1/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


def test_bodies_by_length_by_chunks_and_to_the_end(canned: Canned) -> None:
    # Content-Length: only that many bytes, whatever follows
    assert ask(canned, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef") == (200, b"abc")
    # chunked (aiohttp's streams), split anywhere, with an extension and a trailer-less end
    assert ask(canned, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
               b"c\r\n2;x=y\r\nde\r\n", b"0\r\n\r\n") == (201, b"abcde")
    # neither: to the end of the connection (http.server's HTTP/1.0 answers)
    assert ask(canned, b"HTTP/1.0 200 OK\r\n\r\nuntil", b" close") == (200, b"until close")


def test_lines_arrive_across_chunks(canned: Canned) -> None:
    thread = canned.start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                          b"5\r\n{\"a\":\r\n", b"4\r\n 1}\n\r\n", b"3\r\n{}\n\r\n", b"2\r\n[]\r\n0\r\n\r\n")
    conn = Connection(canned.path, 5.0)
    answer = conn.request("GET", "/", None, {})
    assert [answer.readline() for _ in range(4)] == [b'{"a": 1}\n', b"{}\n", b"[]", b""]
    conn.close()
    thread.join(5)


def test_a_burst_of_events_is_read_line_by_line_and_flushed_when_the_stream_waits(canned: Canned) -> None:
    # a build's output: thousands of one-line chunks, all queued before the CLI reads them
    events = [b'{"event": "build", "line": "%05d"}\n' % i for i in range(3000)]  # ~135 KB
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    thread = canned.start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    conn = Connection(canned.path, 5.0)
    answer = conn.request("GET", "/", None, {})
    thread.join(5)  # the whole answer waits in the socket (it fits in a unix socket's buffer)
    waits: list[int] = []
    lines: list[bytes] = []
    answer.before_wait = lambda: waits.append(len(lines))
    while line := answer.readline():
        lines.append(line)
    conn.close()
    assert lines == events
    # one flush per 64 KiB read, not one per line
    assert 0 < len(waits) <= len(body) // (wire._CHUNK // 2)


def test_an_answer_line_is_bounded(canned: Canned, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_LINE", 1000)
    thread = canned.start(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 3000)
    conn = Connection(canned.path, 5.0)
    answer = conn.request("GET", "/", None, {})
    with pytest.raises(WireError, match="an answer line is longer than 1000 bytes"):
        answer.readline()
    conn.close()
    thread.join(5)


@pytest.mark.parametrize(("answer", "message"), [
    ((b"SSH-2.0-OpenSSH\r\n\r\n",), "not an HTTP answer"),
    ((b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",), "malformed header line"),
    ((b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",), "malformed Content-Length"),
    ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), "malformed chunk size"),
    ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",), "closed in a chunk"),
    ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",), "closed in the answer's body"),
    ((b"HTTP/1.1 200 OK\r\n",), "closed in the answer's head"),
    ((b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD + 10),), "longer than"),
])
def test_a_bad_answer_is_a_wire_error(canned: Canned, answer: tuple[bytes, ...], message: str) -> None:
    with pytest.raises(WireError, match=message):
        ask(canned, *answer)


def test_the_client_turns_wire_errors_and_error_answers_into_one_line(canned: Canned) -> None:
    client = ControlClient(canned.path, timeout=5.0)
    thread = canned.start(b'HTTP/1.1 409 Conflict\r\nContent-Length: 27\r\n\r\n{"error": "deploy running"}')
    with pytest.raises(ControlError, match="^deploy running$"):
        client.post("/v1/apps/web/deploy")
    thread.join(5)
    thread = canned.start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}\n\n\r\n3\r\n{\"a")
    with pytest.raises(ControlError, match="stream .* broke off"):
        list(client.stream("/v1/apps/web/deploy"))
    thread.join(5)
    thread = canned.start(b"garbage\r\n\r\n")
    with pytest.raises(ControlError, match="talking to the daemon .*not an HTTP answer"):
        client.get("/v1/ps")
    thread.join(5)
