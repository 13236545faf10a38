"""The CLI's side of the control API: HTTP/1.1 over the daemon's unix socket (stdlib only)."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from supervisor.model.errors import ControlError


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

    def _request(self, method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
        conn = _UnixConnection(self.socket_path, self.timeout)
        payload = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(
                f"no dockyard daemon answers on {self.socket_path}: start one with "
                "`dockyard serve -c FILE`"
            ) from exc
        except OSError as exc:
            raise ControlError(f"talking to the daemon on {self.socket_path}: {exc}") from exc

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

    def get(self, path: str) -> Any:
        resp = self._request("GET", path)
        self._check(resp)
        return orjson.loads(resp.read())

    def post(self, path: str, body: Any = None) -> Any:
        resp = self._request("POST", path, body if body is not None else {})
        self._check(resp)
        return orjson.loads(resp.read())

    def stream(self, path: str, body: Any = None) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line as it arrives."""
        self.timeout = None  # a deploy may take long; the daemon streams progress
        resp = self._request("POST", path, body if body is not None else {})
        self._check(resp)
        while line := resp.readline():
            line = line.strip()
            if line:
                yield orjson.loads(line)
