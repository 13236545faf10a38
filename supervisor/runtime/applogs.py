"""`dockyard logs`: the Docker logs of an app's serving containers, merged, each line prefixed
with its container's name as Dokku does (`hello.web.1.r4 | line`).

Which containers: the daemon's view (`GET /v1/ps?app=APP`, the rows marked serving: the
current release, every process type). The lines themselves come straight from Docker (the
Docker SDK, one thread per container), so the daemon never carries log traffic.

Without follow, each container's last N lines are merged in time order (Docker's timestamps).
With follow, lines are printed as they arrive, until every followed container stops.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from heapq import merge
from typing import Any

from supervisor.model.errors import DockyardError
from supervisor.runtime import engine

DEFAULT_TAIL = 100  # lines per container, as `dokku logs`


class LogsError(DockyardError):
    """No containers to show, or Docker refused."""


@dataclass(frozen=True, slots=True)
class LogSource:
    name: str  # hello.web.1.r4
    id: str
    process: str


@dataclass(frozen=True, slots=True, order=True)
class LogLine:
    stamp: tuple[str, int]  # ("2026-01-02T03:04:05", nanoseconds): sorts in time order
    source: str
    text: str


def sources_from_ps(rows: Iterable[Mapping[str, Any]], process: str | None = None) -> list[LogSource]:
    """The serving containers among `GET /v1/ps` rows, of one process type if given."""
    found = [
        LogSource(str(r["name"]), str(r.get("id") or r["name"]), str(r.get("process", "")))
        for r in rows
        if r.get("serving") and (process is None or r.get("process") == process)
    ]
    return sorted(found, key=lambda s: s.name)


def parse_stamp(raw: str) -> tuple[str, int]:
    """Docker's RFC 3339 timestamp with up to nine fraction digits -> a sortable key."""
    head, _, frac = raw.rstrip("Z").partition(".")
    digits = "".join(c for c in frac if c.isdigit())[:9]
    return head, int(digits.ljust(9, "0")) if digits else 0


def split_line(raw: str, source: str) -> LogLine:
    """One line as Docker gives it with timestamps=True: `<RFC3339Nano> <text>`."""
    stamp, sep, text = raw.partition(" ")
    if not sep or not stamp[:1].isdigit():
        return LogLine(("", 0), source, raw)
    return LogLine(parse_stamp(stamp), source, text)


class _Lines:
    """Reassembles lines from Docker's frames (a frame may hold part of a line, or several)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._rest = b""

    def feed(self, chunk: bytes) -> list[LogLine]:
        data = self._rest + chunk
        *complete, self._rest = data.split(b"\n")
        return [split_line(c.decode(errors="replace").rstrip("\r"), self.source) for c in complete]

    def flush(self) -> list[LogLine]:
        rest, self._rest = self._rest, b""
        return [split_line(rest.decode(errors="replace"), self.source)] if rest else []


def format_line(line: LogLine, width: int = 0, prefix: bool = True) -> str:
    return f"{line.source.ljust(width)} | {line.text}" if prefix else line.text


def _tail_arg(tail: int | None) -> int | str:
    return "all" if tail is None else max(0, tail)


def read(docker: Any, sources: Sequence[LogSource], tail: int | None = DEFAULT_TAIL) -> list[LogLine]:
    """Each container's last `tail` lines (None: all), merged in time order."""
    per_source = []
    for src in sources:
        try:
            raw = docker.api.logs(src.id, stdout=True, stderr=True, timestamps=True,
                                  tail=_tail_arg(tail))
        except Exception as exc:  # docker.errors.NotFound: the container went away meanwhile
            if engine.is_not_found(exc):
                continue
            raise LogsError(f"reading the logs of {src.name}: {exc}") from exc
        lines = _Lines(src.name)
        per_source.append(lines.feed(raw) + lines.flush())
    return list(merge(*per_source))


def follow(
    docker: Any,
    sources: Sequence[LogSource],
    tail: int | None = DEFAULT_TAIL,
    stop: threading.Event | None = None,
) -> Iterator[LogLine]:
    """Lines as they arrive from every container (first each one's last `tail` lines).

    Ends when every container's stream ends (the containers stopped), when `stop` is set, or
    when the caller closes the generator; the Docker streams are closed in every case.
    """
    stop = stop or threading.Event()
    lines: queue.Queue[LogLine | None] = queue.Queue()
    streams: list[Any] = []
    lock = threading.Lock()
    errors: list[str] = []

    def pump(src: LogSource) -> None:
        try:
            stream = docker.api.logs(src.id, stdout=True, stderr=True, timestamps=True,
                                     stream=True, follow=True, tail=_tail_arg(tail))
            with lock:
                streams.append(stream)
                if stop.is_set():  # the consumer left while Docker answered
                    stream.close()
                    return
            buffer = _Lines(src.name)
            for chunk in stream:
                for line in buffer.feed(chunk):
                    lines.put(line)
            for line in buffer.flush():
                lines.put(line)
        except Exception as exc:  # a closed stream raises here; a vanished container too
            if not stop.is_set() and not engine.is_not_found(exc):
                errors.append(f"{src.name}: {exc}")
        finally:
            lines.put(None)

    threads = [threading.Thread(target=pump, args=(s,), name=f"logs-{s.name}", daemon=True)
               for s in sources]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running and not stop.is_set():
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
            else:
                yield item
    finally:
        stop.set()
        with lock:
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.close()
    if errors:
        raise LogsError("; ".join(errors))
