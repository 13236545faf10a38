"""Heroku/Dokku Procfile parsing, with the rules of dokku/procfile-util (`procfile/parse.go`).

- Each line is trimmed. Blank lines and lines starting with `#` or `//` are comments.
- A definition is `name: command`, name matching `[A-Za-z0-9_-]+` (procfile-util's non-strict
  rule; names that are not lowercase DNS labels get a warning, as `--strict` would reject them).
- An inline comment is cut off: the command is everything before the *last* whitespace
  followed by `#` (or, failing that, by `//`) and more text: `web: node web.js # note` -> `node web.js`.
- Anything else is an invalid line. Like procfile-util (and so Dokku, whose deploy of the
  `dockerfile-procfile-bad` test app fails), an invalid line, a duplicated name, a name over
  63 characters, an empty command or a file with no definition is an error. Unlike procfile-util,
  which stops at the first, every problem is reported at once, each with its line number.
- Definitions keep the file's order (procfile-util sorts them by name).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from supervisor.config import validators
from supervisor.config.textfile import read_text
from supervisor.model.errors import ConfigError, Problem

_OLD_NAME = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
_STRICT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HASH_COMMENT = re.compile(r"^(.*)\s#.+$")
_SLASH_COMMENT = re.compile(r"^(.*)\s//.+$")
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})")


@dataclass(frozen=True, slots=True)
class Procfile(Mapping[str, str]):
    """Process type -> command, in file order, plus warnings."""

    processes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> str:
        return self.processes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)


def load_procfile(path: str | Path) -> Procfile:
    return parse_procfile(read_text(path, "Procfile"), str(path))


def parse_procfile(text: str, path: str) -> Procfile:
    problems: list[Problem] = []
    warnings: list[str] = []
    processes: dict[str, str] = {}
    first_line: dict[str, int] = {}
    too_big = validators.file_size(len(text.encode(errors="replace")))
    if too_big:
        raise ConfigError([Problem(str(path), "", too_big)])

    def problem(number: int, message: str) -> None:
        problems.append(Problem(str(path), f"line {number}", message))

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        match = _OLD_NAME.match(line)
        if match is None:
            hint = " (an unresolved git merge conflict marker?)" if _CONFLICT.match(line) else ""
            problem(number, f"invalid line in Procfile{hint}: {line[:80]!r}; expected \"name: command\"")
            continue
        name, command = match.group(1), match.group(2)
        if len(name) > 63:
            problem(number, f"process name over 63 characters: {name[:20]!r}...")
            continue
        if name in first_line:
            problem(number, f"process names must be unique: {name!r} is already defined on line {first_line[name]}")
            continue
        first_line[name] = number
        comment = _HASH_COMMENT.match(command) or _SLASH_COMMENT.match(command)
        if comment:
            command = comment.group(1)
        command = command.strip()
        if command.startswith(("#", "//")):
            problem(number, f"comment specified in place of a command for {name!r}")
            continue
        if not command:
            problem(number, f"no command specified for {name!r}")
            continue
        if not _STRICT_NAME.match(name):
            warnings.append(
                str(Problem(str(path), f"line {number}", f"process name {name!r} is not a lowercase DNS label (procfile-util --strict rejects it)"))
            )
        processes[name] = command

    if not processes and not problems:
        problems.append(Problem(str(path), "", "no entries found in Procfile"))
    if problems:
        raise ConfigError(problems)
    return Procfile(MappingProxyType(processes), tuple(warnings))
