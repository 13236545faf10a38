"""dotenv files (an app's `env_file`): parsing, and the permission rule for secrets.

The format is the common subset of docker's `--env-file`, Kamal's `.kamal/secrets` and
python-dotenv: `KEY=VALUE` lines; blank lines and `#` comments are skipped; an optional
`export ` prefix; a value in single quotes is taken literally, in double quotes with `\\n`,
`\\"` and `\\\\` escapes; an unquoted value ends at ` #` and is stripped. No variable
expansion (a `$` is kept as is), no multi-line values.
"""

from __future__ import annotations

import stat
from pathlib import Path

from supervisor.config import validators


class DotenvError(ValueError):
    """A file that is not a valid dotenv file, or one dockyard refuses to read; names it."""


def parse_dotenv(text: str, name: str = "env file") -> dict[str, str]:
    """`KEY=VALUE` lines -> {KEY: VALUE}; DotenvError names the first bad line."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, sep, raw = stripped.partition("=")
        key = key.strip()
        if not sep:
            raise DotenvError(f"{name}: line {number}: expected KEY=VALUE")
        message = validators.env_name(key)
        if message:
            raise DotenvError(f"{name}: line {number}: {key!r}: {message}")
        env[key] = _value(raw.strip(), name, number)
    return env


def _value(raw: str, name: str, number: int) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = _closing(raw, quote)
        if end < 0:
            raise DotenvError(f"{name}: line {number}: unterminated {quote} quote")
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise DotenvError(f"{name}: line {number}: unexpected text after the closing quote")
        body = raw[1:end]
        if quote == "'":
            return body
        return _unescape(body)
    comment = raw.find(" #")
    return (raw[:comment] if comment >= 0 else raw).strip()


def _closing(raw: str, quote: str) -> int:
    i = 1
    while i < len(raw):
        if quote == '"' and raw[i] == "\\":
            i += 2
            continue
        if raw[i] == quote:
            return i
        i += 1
    return -1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def private_problem(path: Path) -> str | None:
    """Why `path` must not hold secrets (missing, not a file, readable by group or others), or None."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot read env file {str(path)!r}: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return f"env file {str(path)!r} is not a regular file"
    if info.st_mode & 0o077:
        return (f"env file {str(path)!r} can be read by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
    return None


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of the env file at `path`, refusing one other users can read."""
    problem = private_problem(path)
    if problem:
        raise DotenvError(problem)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DotenvError(f"cannot read env file {str(path)!r}: {exc}") from exc
    return parse_dotenv(text, str(path))
