"""Structured logs: key=value lines by default, JSON lines with --log-format json.

Messages are written as `event key=value ...` (paired: deploying/deployed), so the kv format
prints them as they are and the JSON format splits them into fields.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"time={stamp}Z level={record.levelname.lower()} logger={record.name} msg={record.getMessage()}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event, _, rest = message.partition(" ")
        fields: dict[str, object] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": event,
        }
        for token in rest.split(" "):
            key, sep, value = token.partition("=")
            if sep and key.isidentifier():
                fields[key] = value
        if not all(t.partition("=")[1] for t in rest.split(" ") if t):
            fields["text"] = message
        return orjson.dumps(fields).decode()


def setup(fmt: str = "kv", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger("dockyard")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
