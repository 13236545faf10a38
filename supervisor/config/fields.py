"""Typed reading of parsed TOML/JSON tables that collects problems instead of raising.

A `Table` wraps one dict at a key path (`apps.hello.limits`). Each getter checks the type
and range of one key, records a `Problem` naming file and key path when it is wrong, and
returns the default instead. `finish()` reports the keys nobody asked for (typos).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

from supervisor.model import defaults
from supervisor.model.errors import Problem

Word = TypeVar("Word", bound=str)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_part(name: object) -> str:
    """A key as TOML would spell it: bare when it can be, quoted otherwise."""
    text = str(name)
    return text if _BARE_KEY.match(text) else json.dumps(text)


def join(prefix: str, name: object) -> str:
    return f"{prefix}.{key_part(name)}" if prefix else key_part(name)


def one_of(text: str | None, words: tuple[Word, ...]) -> Word | None:
    """`text` as the member of `words` it equals (typed as the words' Literal), else None."""
    return next((w for w in words if w == text), None)


def show(value: object) -> str:
    """A value as the user wrote it: strings quoted, booleans in TOML/JSON spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Collector:
    """Problems and warnings of one file."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(str(Problem(self.file, key, message)))


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


class Table:
    def __init__(self, out: Collector, data: Mapping[str, Any], prefix: str) -> None:
        self.out = out
        self.data = data
        self.prefix = prefix
        self._seen: set[str] = set()

    def key(self, name: object) -> str:
        return join(self.prefix, name)

    def has(self, name: str) -> bool:
        self._seen.add(name)
        return name in self.data

    def raw(self, name: str) -> Any:
        self._seen.add(name)
        return self.data.get(name)

    def error(self, name: str, message: str) -> None:
        self.out.error(self.key(name), message)

    def bad(self, name: str, expected: str) -> None:
        self.error(name, f"must be {expected}, got {show(self.data.get(name))}")

    def string(
        self,
        name: str,
        default: str | None = None,
        *,
        check: Callable[[str], str | None] | None = None,
        empty_ok: bool = False,
    ) -> str | None:
        if not self.has(name):
            return default
        value = self.data[name]
        if not isinstance(value, str) or (not value and not empty_ok):
            self.bad(name, "a non-empty string" if not empty_ok else "a string")
            return default
        if check is not None:
            message = check(value)
            if message:
                self.error(name, message)
                return default
        return value

    def choice(self, name: str, default: Word, choices: tuple[Word, ...]) -> Word:
        """One of `choices` (a kinds tuple, so the result keeps its Literal type)."""
        value = one_of(self.string(name, default), choices)
        if value is None:
            self.error(name, f"must be one of {', '.join(choices)}, got {show(self.data.get(name, default))}")
            return default
        return value

    def integer(
        self, name: str, default: int, *, minimum: int = 1, maximum: int | None = None, cap: int | None = None
    ) -> int:
        """An integer >= minimum; `maximum` is part of the stated range, `cap` a sanity bound."""
        if not self.has(name):
            return default
        value = self.data[name]
        if is_int(value) and value >= minimum and (maximum is None or value <= maximum):
            if cap is None or value <= cap:
                return int(value)
            self.error(name, f"must be at most {cap}, got {show(value)}")
            return default
        if maximum is not None:
            self.bad(name, f"an integer {minimum}-{maximum}")
        elif minimum == 1:
            self.bad(name, "a positive integer")
        else:
            self.bad(name, f"an integer >= {minimum}")
        return default

    def number(
        self, name: str, default: float, *, positive: bool = False, maximum: float = defaults.MAX_SECONDS
    ) -> float:
        value = self.optional_number(name, positive=positive, maximum=maximum)
        return default if value is None else value

    def optional_number(
        self, name: str, *, positive: bool = True, maximum: float = defaults.MAX_SECONDS
    ) -> float | None:
        """A number of seconds, > 0 (`positive`) or >= 0, and at most `maximum`."""
        if not self.has(name):
            return None
        value = self.data[name]
        if is_number(value) and (value > 0 if positive else value >= 0):
            if value <= maximum:
                return float(value)
            self.error(name, f"must be at most {maximum:g} seconds, got {show(value)}")
            return None
        self.bad(name, "a positive number of seconds" if positive else "a number of seconds >= 0")
        return None

    def boolean(self, name: str, default: bool) -> bool:
        if not self.has(name):
            return default
        value = self.data[name]
        if isinstance(value, bool):
            return value
        self.bad(name, "true or false")
        return default

    def strings(self, name: str, *, nonempty_items: bool = True) -> tuple[str, ...] | None:
        """An array of strings; None when absent or wrong."""
        if not self.has(name):
            return None
        value = self.data[name]
        if not isinstance(value, list) or not all(
            isinstance(v, str) and (v or not nonempty_items) for v in value
        ):
            self.bad(name, "an array of non-empty strings")
            return None
        return tuple(value)

    def table(self, name: str) -> Table | None:
        if not self.has(name):
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.bad(name, "a table")
            return None
        return Table(self.out, value, self.key(name))

    def tables(self, name: str) -> list[Table] | None:
        """An array of tables (`[[x]]`); None when absent or wrong."""
        if not self.has(name):
            return None
        value = self.data[name]
        if not isinstance(value, list):
            self.bad(name, "an array of tables")
            return None
        result = []
        for i, item in enumerate(value):
            key = f"{self.key(name)}[{i}]"
            if isinstance(item, dict):
                result.append(Table(self.out, item, key))
            else:
                self.out.error(key, f"must be a table, got {show(item)}")
        return result

    def unknown(self) -> list[str]:
        return [k for k in self.data if k not in self._seen]

    def finish(self, *, strict: bool = True, ignored_note: str = "ignored") -> None:
        """Report keys never read: an error in our TOML, a warning in Dokku's files."""
        for name in self.unknown():
            hint = ""
            close = difflib.get_close_matches(str(name), sorted(self._seen), n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
            if strict:
                self.out.error(self.key(name), f"unknown key{hint}")
            else:
                self.out.warn(self.key(name), f"unknown key{hint}, {ignored_note}")
