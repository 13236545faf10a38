"""The CLI's side of the control API: HTTP/1.1 over the daemon's unix socket (cli/wire.py),
JSON by the standard library (orjson's import alone cost ~14 ms of a command's CPU).

Every failure to talk to the daemon, or an error answer from it, is a ControlError."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor.cli.wire import Answer, Connection
from supervisor.model.errors import ControlError

JSON = "application/json"
TAR = "application/x-tar"


def _json(body: Any) -> bytes:
    return json.dumps(body if body is not None else {}).encode()


class ControlClient:
    def __init__(self, socket_path: Path, timeout: float | None = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _request(
        self, method: str, path: str, payload: bytes | None = None, content_type: str = JSON,
        *, stream: bool = False, conn: Connection | None = None,
    ) -> Answer:
        # a streamed answer (a deploy, a build) may take long; the daemon sends progress
        conn = conn or Connection(self.socket_path, None if stream else self.timeout)
        headers = {"Content-Type": content_type} if payload is not None else {}
        try:
            resp = conn.request(method, path, payload, headers)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(
                f"no dockyard daemon answers on {self.socket_path}: start one with "
                "`dockyard serve -c FILE`"
            ) from exc
        except OSError as exc:  # WireError too
            raise ControlError(f"talking to the daemon on {self.socket_path}: {exc}") from exc
        self._check(resp)
        return resp

    @staticmethod
    def _check(resp: Answer) -> None:
        if resp.status >= 400:
            raw = resp.read()
            try:
                data = json.loads(raw)
                message = data.get("error", raw.decode())
                problems = data.get("problems") or []
                if problems:
                    message += "\n" + "\n".join(problems)
            except (ValueError, AttributeError):  # json.JSONDecodeError, bad UTF-8
                message = raw.decode(errors="replace").strip()
            raise ControlError(message)

    def _read(self, resp: Answer) -> Any:
        try:
            return json.loads(resp.read())
        except (OSError, ValueError) as exc:  # WireError, json.JSONDecodeError
            raise ControlError(f"reading the daemon's answer on {self.socket_path}: {exc}") from exc

    def _lines(self, resp: Answer) -> Iterator[dict[str, Any]]:
        """Each NDJSON line of `resp` as it arrives; what the caller printed meanwhile is flushed
        whenever the daemon pauses (before each blocking read), not line by line."""
        resp.before_wait = _flush_output
        try:
            while line := resp.readline():
                line = line.strip()
                if line:
                    yield json.loads(line)
        except (OSError, ValueError) as exc:  # WireError, json.JSONDecodeError
            raise ControlError(
                f"the daemon's stream on {self.socket_path} broke off: {exc or type(exc).__name__}"
            ) from exc

    def get(self, path: str) -> Any:
        return self._read(self._request("GET", path))

    def post(self, path: str, body: Any = None) -> Any:
        return self._read(self._request("POST", path, _json(body)))

    def stream(self, path: str, body: Any = None) -> Iterator[dict[str, Any]]:
        """POST `body` as JSON and yield each NDJSON line of the answer as it arrives."""
        payload = _json(body)
        yield from self._lines(self._request("POST", path, payload, stream=True))

    def upload(self, path: str, data: bytes, content_type: str = TAR) -> Iterator[dict[str, Any]]:
        """POST raw `data` (a build context) and yield each NDJSON line of the answer."""
        yield from self._lines(self._request("POST", path, data, content_type, stream=True))

    @contextlib.contextmanager
    def hold(self, path: str, body: Any = None) -> Iterator[Iterator[dict[str, Any]]]:
        """POST `body` and yield the answer's NDJSON lines; the connection stays open until the
        block ends, however it ends (`dockyard run`: the daemon removes the container then)."""
        conn = Connection(self.socket_path, None)
        try:
            resp = self._request("POST", path, _json(body),
                                 stream=True, conn=conn)
            yield self._lines(resp)
        finally:
            conn.close()


def _flush_output() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
