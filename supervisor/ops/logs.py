"""Structured logs: key=value lines by default, JSON lines with --log-format json.

Messages are written as `event key=value ...` (paired: deploying/deployed), so the kv format
prints them as they are and the JSON format splits them into fields.
"""

from __future__ import annotations

import logging
import re
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


_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z_][A-Za-z0-9_.]*)=")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def split_message(message: str) -> tuple[str, dict[str, object]]:
    """`deploy failed app=x release=3 reason=check 'health' failed` ->
    ("deploy failed", {"app": "x", "release": 3, "reason": "check 'health' failed"}).

    The event is the text before the first key; a value runs to the next ` key=`, so the
    last value may hold spaces. Whole numbers and decimals become numbers; %r quotes go.
    """
    keys = list(_KEY.finditer(message))
    if not keys:
        return message, {}
    event = message[: keys[0].start()].strip().rstrip(":")
    fields: dict[str, object] = {}
    for key, following in zip(keys, [*keys[1:], None], strict=True):
        end = following.start() if following else len(message)
        fields[key.group(1)] = _typed(message[key.end() : end].strip())
    return event, fields


def _typed(value: str) -> object:
    if _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg (the event) and the key=value fields.

    A message that is itself a JSON object (the proxy's access log) is merged in as fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict[str, object] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        parsed = _json_object(message)
        if parsed is not None:
            fields["msg"] = "request"
            fields.update(parsed)
        else:
            event, values = split_message(message)
            fields["msg"] = event
            for key, value in values.items():
                fields.setdefault(key, value)
            if not event or any(isinstance(v, str) and " " in v for v in values.values()):
                fields["text"] = message  # ambiguous splits keep the whole line too
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(fields, default=str).decode()


def _json_object(message: str) -> dict[str, object] | None:
    if not message.startswith("{"):
        return None
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def setup(fmt: str = "kv", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger("dockyard")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
