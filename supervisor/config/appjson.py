"""Dokku's app.json: healthchecks, cron, formation, scripts.dokku.predeploy/postdeploy and env.

Dokku reads app.json leniently: keys it does not use are ignored, so here they only warn.
What Dokku would reject (bad JSON, wrong types, a bad cron schedule) is a `ConfigError`.
Like Dokku, `//` and `/* */` comments (and trailing commas) outside strings are accepted.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from supervisor.config import validators
from supervisor.config.fields import Collector, Table, is_int, show
from supervisor.config.healthcheck import parse_healthchecks
from supervisor.config.textfile import read_text
from supervisor.model import defaults
from supervisor.model.errors import ConfigError, Problem
from supervisor.model.kinds import CONCURRENCY_POLICIES
from supervisor.model.spec import CronSpec, HealthCheckSpec

# Heroku app.json keys that Dokku (and dockyard) do not act on.
IGNORED_KEYS = frozenset(
    "name description keywords logo website repository image addons buildpacks stack "
    "success_url environments".split()
)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_CHUNK_DIGITS = 5  # 36**5 < 2**30: one CPython digit, so each divmod is a single fast pass
_CHUNK = 36**_CHUNK_DIGITS
# A JSON string (unterminated ones run to the end), a // comment, a /* */ comment.
_COMMENT_TOKENS = re.compile(r'"(?:[^"\\]+|\\[\s\S]?)*"?|//[^\n]*|/\*[\s\S]*?(?:\*/|\Z)')
# A JSON string, or a comma followed only by whitespace and a closing bracket.
_COMMA_TOKENS = re.compile(r'"(?:[^"\\]+|\\[\s\S]?)*"?|,(?=\s*[}\]])')


@dataclass(frozen=True, slots=True)
class AppJson:
    healthchecks: Mapping[str, tuple[HealthCheckSpec, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    cron: tuple[CronSpec, ...] = ()
    formation: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    predeploy: str | None = None
    postdeploy: str | None = None
    warnings: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # defaults
    required_env: tuple[str, ...] = ()  # required, no value: must come from the TOML
    generated_env: tuple[str, ...] = ()  # "generator": dockyard generates nothing


def cron_id(app: str, command: str, schedule: str) -> str:
    """Dokku's cron id: base36 (lowercase) of `app===command===schedule` (plugins/cron).

    Computed once per (app, command, schedule) and kept: a reload or a restart that re-reads the
    same app.json reuses it. The command and schedule lengths are capped by the validators."""
    return _cron_id(app, command, schedule)


@functools.lru_cache(maxsize=1024)
def _cron_id(app: str, command: str, schedule: str) -> str:
    data = f"{app}==={command}==={schedule}".encode()
    return "0" * (len(data) - len(data.lstrip(b"\0"))) + base36(int.from_bytes(data, "big"))


def base36(number: int) -> str:
    """`number` in lowercase base36 ("" for 0), five digits per pass over the big integer."""
    chunks: list[int] = []
    while number:
        number, rest = divmod(number, _CHUNK)
        chunks.append(rest)
    out: list[str] = []
    for chunk in reversed(chunks):
        digits = []
        for _ in range(_CHUNK_DIGITS):
            chunk, rest = divmod(chunk, 36)
            digits.append(_BASE36[rest])
        out.append("".join(reversed(digits)))
    return "".join(out).lstrip("0")


def strip_json_comments(text: str) -> str:
    """Blank out // and /* */ comments and trailing commas outside strings, keeping positions."""

    def blank(match: re.Match[str]) -> str:
        token = match.group()
        if token.startswith('"'):
            return token
        return "".join("\n" if ch == "\n" else " " for ch in token) if token.startswith("/*") else " " * len(token)

    text = _COMMENT_TOKENS.sub(blank, text)
    return _COMMA_TOKENS.sub(lambda m: " " if m.group() == "," else m.group(), text)


def load_app_json(path: str | Path, *, app: str = "") -> AppJson:
    return parse_app_json(read_text(path, "app.json"), str(path), app=app)


def parse_app_json(text: str, path: str, *, app: str = "") -> AppJson:
    """Parse app.json text. `app` only feeds the cron ids (Dokku hashes the app name in)."""
    out = Collector(str(path))
    too_big = validators.file_size(len(text.encode(errors="replace")))
    if too_big:
        raise ConfigError([Problem(out.file, "", too_big)])
    if not text.strip():
        return AppJson()  # Dokku treats an empty app.json as none
    try:
        data = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as e:
        raise ConfigError([Problem(out.file, "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")]) from e
    except (RecursionError, ValueError) as e:
        raise ConfigError([Problem(out.file, "", f"invalid JSON: {e}")]) from e
    if not isinstance(data, dict):
        raise ConfigError([Problem(out.file, "", f"must hold a JSON object, got {show(data)}")])

    top = Table(out, data, "")
    checks = top.table("healthchecks")
    healthchecks = parse_healthchecks(checks, strict=False) if checks else {}
    cron = _cron(top, app)
    formation = _formation(top)
    predeploy, postdeploy = _scripts(top)
    env, required, generated = _env(top)
    for key in top.unknown():
        note = "ignored by Dokku and dockyard" if key in IGNORED_KEYS else "unknown key, ignored"
        out.warn(key, note)
    if out.problems:
        raise ConfigError(out.problems)
    return AppJson(
        healthchecks=MappingProxyType(healthchecks),
        cron=tuple(cron),
        formation=MappingProxyType(formation),
        predeploy=predeploy,
        postdeploy=postdeploy,
        warnings=tuple(out.warnings),
        env=MappingProxyType(env),
        required_env=tuple(required),
        generated_env=tuple(generated),
    )


def _cron(top: Table, app: str) -> list[CronSpec]:
    result: list[CronSpec] = []
    for t in top.tables("cron") or ():
        command = t.string("command", check=validators.cron_command)
        schedule = t.string("schedule")
        if not t.has("command"):
            t.error("command", "is required")
        if not t.has("schedule"):
            t.error("schedule", "is required")
        elif schedule is not None:
            message = validators.cron_schedule(schedule)
            if message:
                t.error("schedule", message)
                schedule = None
        policy = t.choice("concurrency_policy", defaults.CRON_CONCURRENCY, CONCURRENCY_POLICIES)
        maintenance = t.boolean("maintenance", False)
        t.finish(strict=False)
        if command is None or schedule is None:
            continue
        if maintenance:
            t.out.warn(t.prefix, "maintenance is true: the task is paused and not scheduled")
            continue
        result.append(
            CronSpec(
                id=cron_id(app, command, schedule),
                command=command,
                schedule=schedule,
                concurrency_policy=policy,
                source="app.json",
            )
        )
    return result


def _formation(top: Table) -> dict[str, int]:
    table = top.table("formation")
    result: dict[str, int] = {}
    for process in list(table.data) if table else ():
        assert table is not None
        entry = table.table(process)
        if entry is None:
            continue
        message = validators.process_name(process)
        if message:
            table.error(process, message)
        quantity = entry.data.get("quantity")
        if entry.has("quantity"):
            if is_int(quantity) and 0 <= quantity <= defaults.MAX_SCALE:
                result[process] = int(quantity)
            elif is_int(quantity) and quantity > defaults.MAX_SCALE:
                entry.error("quantity", f"must be at most {defaults.MAX_SCALE}, got {quantity}")
            else:
                entry.bad("quantity", "an integer >= 0")
        for key in ("max_parallel", "autoscaling", "service"):
            if entry.has(key):
                entry.out.warn(entry.key(key), "not supported by dockyard, ignored")
        entry.finish(strict=False)
    return result


def _scripts(top: Table) -> tuple[str | None, str | None]:
    scripts = top.table("scripts")
    if scripts is None:
        return None, None
    dokku = scripts.table("dokku")
    predeploy = postdeploy = None
    if dokku is not None:
        predeploy = dokku.string("predeploy", empty_ok=True) or None
        postdeploy = dokku.string("postdeploy", empty_ok=True) or None
        dokku.finish(strict=False)
    if scripts.has("postdeploy"):
        scripts.out.warn(
            scripts.key("postdeploy"),
            "Heroku's run-once postdeploy script is ignored; use scripts.dokku.postdeploy",
        )
    scripts.finish(strict=False)
    return predeploy, postdeploy


def _env(top: Table) -> tuple[dict[str, str], list[str], list[str]]:
    table = top.table("env")
    values: dict[str, str] = {}
    required: list[str] = []
    generated: list[str] = []
    for name in list(table.data) if table else ():
        assert table is not None
        raw: Any = table.raw(name)
        message = validators.env_name(name)
        if message:
            table.error(name, message)
            continue
        if isinstance(raw, str):
            values[name] = raw
            continue
        entry = table.table(name)
        if entry is None:
            continue
        value = entry.string("value", empty_ok=True)
        generator = entry.string("generator")
        is_required = entry.boolean("required", True)
        entry.string("description", empty_ok=True)
        entry.boolean("sync", False)
        entry.finish(strict=False)
        if value is not None:
            values[name] = value
        elif generator is not None:
            generated.append(name)
        elif is_required:
            required.append(name)
    return values, required, generated
