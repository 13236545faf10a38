"""The CLI's side of the control API: HTTP/1.1 over the daemon's unix socket (stdlib only).

Every failure to talk to the daemon, or an error answer from it, is a ControlError."""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from supervisor.model.errors import ControlError

JSON = "application/json"
TAR = "application/x-tar"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class ControlClient:
    def __init__(self, socket_path: Path, timeout: float | None = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _request(
        self, method: str, path: str, payload: bytes | None = None, content_type: str = JSON,
        *, stream: bool = False, conn: _UnixConnection | None = None,
    ) -> http.client.HTTPResponse:
        # a streamed answer (a deploy, a build) may take long; the daemon sends progress
        conn = conn or _UnixConnection(self.socket_path, None if stream else self.timeout)
        headers = {"Content-Type": content_type} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(
                f"no dockyard daemon answers on {self.socket_path}: start one with "
                "`dockyard serve -c FILE`"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ControlError(f"talking to the daemon on {self.socket_path}: {exc}") from exc
        self._check(resp)
        return resp

    @staticmethod
    def _check(resp: http.client.HTTPResponse) -> None:
        if resp.status >= 400:
            raw = resp.read()
            try:
                data = orjson.loads(raw)
                message = data.get("error", raw.decode())
                problems = data.get("problems") or []
                if problems:
                    message += "\n" + "\n".join(problems)
            except (orjson.JSONDecodeError, AttributeError):
                message = raw.decode(errors="replace").strip()
            raise ControlError(message)

    def _read(self, resp: http.client.HTTPResponse) -> Any:
        try:
            return orjson.loads(resp.read())
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as exc:
            raise ControlError(f"reading the daemon's answer on {self.socket_path}: {exc}") from exc

    def _lines(self, resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        """Each NDJSON line of `resp` as it arrives."""
        try:
            while line := resp.readline():
                line = line.strip()
                if line:
                    yield orjson.loads(line)
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as exc:
            raise ControlError(
                f"the daemon's stream on {self.socket_path} broke off: {exc or type(exc).__name__}"
            ) from exc

    def get(self, path: str) -> Any:
        return self._read(self._request("GET", path))

    def post(self, path: str, body: Any = None) -> Any:
        return self._read(self._request("POST", path, orjson.dumps(body if body is not None else {})))

    def stream(self, path: str, body: Any = None) -> Iterator[dict[str, Any]]:
        """POST `body` as JSON and yield each NDJSON line of the answer as it arrives."""
        payload = orjson.dumps(body if body is not None else {})
        yield from self._lines(self._request("POST", path, payload, stream=True))

    def upload(self, path: str, data: bytes, content_type: str = TAR) -> Iterator[dict[str, Any]]:
        """POST raw `data` (a build context) and yield each NDJSON line of the answer."""
        yield from self._lines(self._request("POST", path, data, content_type, stream=True))

    @contextlib.contextmanager
    def hold(self, path: str, body: Any = None) -> Iterator[Iterator[dict[str, Any]]]:
        """POST `body` and yield the answer's NDJSON lines; the connection stays open until the
        block ends, however it ends (`dockyard run`: the daemon removes the container then)."""
        conn = _UnixConnection(self.socket_path, None)
        try:
            resp = self._request("POST", path, orjson.dumps(body if body is not None else {}),
                                 stream=True, conn=conn)
            yield self._lines(resp)
        finally:
            conn.close()
