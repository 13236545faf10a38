"""Healthchecks in Dokku's app.json format, shared by the TOML loader and the app.json loader.

Keys keep Dokku's camelCase spelling (`initialDelay`, `httpHeaders`, `onFailure`) and get
Dokku's defaults (docker-container-healthchecker: attempts 3, timeout 5, wait 5, path "/").
"""

from __future__ import annotations

from supervisor.config.fields import Table, is_int, one_of, show
from supervisor.model import defaults
from supervisor.model.kinds import CHECK_SCHEMES, CHECK_TYPES, CheckType
from supervisor.model.spec import HealthCheckSpec

# "path" is the reference document's name for an HTTP startup check.
_TYPE_ALIASES: dict[str, CheckType] = {"path": "startup"}


def parse_healthchecks(table: Table, *, strict: bool) -> dict[str, tuple[HealthCheckSpec, ...]]:
    """`healthchecks`: process type -> array of checks."""
    result: dict[str, tuple[HealthCheckSpec, ...]] = {}
    for process in list(table.data):
        checks = table.tables(process)
        if checks is None:
            continue
        parsed = [parse_check(check, strict=strict) for check in checks]
        result[process] = tuple(c for c in parsed if c is not None)
    return result


def _lenient_positive(t: Table, name: str, default: float, *, strict: bool) -> float:
    """Dokku replaces zero or negative attempts/timeout/wait by the default; our TOML rejects them."""
    value = t.data.get(name)
    if not strict and is_int(value) and value <= 0:
        t.has(name)
        t.out.warn(t.key(name), f"{show(value)} is not positive; Dokku's default {default:g} applies")
        return default
    if name == "attempts":
        return t.integer(name, int(default), cap=defaults.MAX_CHECK_ATTEMPTS)
    return t.number(name, default, positive=True)


def parse_check(t: Table, *, strict: bool) -> HealthCheckSpec | None:
    before = len(t.out.problems)
    kind_text = t.string("type", defaults.CHECK_TYPE, empty_ok=not strict) or defaults.CHECK_TYPE
    is_path_type = kind_text == "path"
    kind = _TYPE_ALIASES.get(kind_text) or one_of(kind_text, CHECK_TYPES)
    if kind is None:
        t.error("type", f"must be one of {', '.join(CHECK_TYPES)} (or path), got {show(kind_text)}")
        kind = defaults.CHECK_TYPE

    path = t.string("path", empty_ok=not strict) or None
    if path is not None and not path.startswith("/"):
        t.error("path", f"must start with \"/\", got {show(path)}")
    if is_path_type and path is None:
        path = defaults.CHECK_PATH
    scheme = one_of((t.string("scheme", defaults.CHECK_SCHEME) or defaults.CHECK_SCHEME).lower(), CHECK_SCHEMES)
    if scheme is None:
        t.error("scheme", f"must be {' or '.join(CHECK_SCHEMES)}, got {show(t.data.get('scheme'))}")
        scheme = defaults.CHECK_SCHEME

    port = t.integer("port", 0, minimum=1, maximum=65535) if t.has("port") else 0
    attempts = int(_lenient_positive(t, "attempts", defaults.CHECK_ATTEMPTS, strict=strict))
    timeout = _lenient_positive(t, "timeout", defaults.CHECK_TIMEOUT, strict=strict)
    wait = _lenient_positive(t, "wait", defaults.CHECK_WAIT, strict=strict)
    initial_delay = t.number("initialDelay", defaults.CHECK_INITIAL_DELAY)
    uptime = t.optional_number("uptime", positive=False)
    command = t.strings("command")
    if command == ():
        t.error("command", "must not be empty")
    listening = t.boolean("listening", False)

    modes = [
        m
        for m, on in (
            ("command", bool(command)),
            ("path", path is not None),
            ("uptime", bool(uptime)),
            ("listening", listening),
        )
        if on
    ]
    if len(modes) > 1:
        t.out.error(t.prefix, f"a check can use only one of command, path, uptime, listening; got {', '.join(modes)}")

    check = HealthCheckSpec(
        type=kind,
        name=t.string("name", "", empty_ok=True) or "",
        description=t.string("description", "", empty_ok=True) or "",
        path=path,
        port=port or None,
        scheme=scheme,
        http_headers=_headers(t),
        attempts=attempts,
        timeout=timeout,
        wait=wait,
        initial_delay=initial_delay,
        content=t.string("content", "", empty_ok=True) or "",
        uptime=uptime,
        listening=listening,
        command=command or (),
        warn=t.boolean("warn", False),
    )
    _refuse_on_failure(t, strict=strict)
    t.finish(strict=strict, ignored_note="ignored (Dokku ignores unknown healthcheck keys)")
    return check if len(t.out.problems) == before else None


def _headers(t: Table) -> tuple[tuple[str, str], ...]:
    items = t.tables("httpHeaders")
    headers: list[tuple[str, str]] = []
    for item in items or ():
        name = item.string("name")
        value = item.string("value", "", empty_ok=True)
        if name is None and not item.has("name"):
            item.out.error(item.key("name"), "is required")
        item.finish()
        if name is not None and value is not None:
            headers.append((name, value))
    return tuple(headers)


ON_FAILURE_REFUSED = (
    "is not supported: Dokku runs onFailure.command on the host and POSTs to onFailure.url from "
    "it, and dockyard never runs a command from a config or a pushed app.json on the host; use a "
    "`command` check (it runs inside the container) or alert on the check metrics (docs/operations.md)"
)


def _refuse_on_failure(t: Table, *, strict: bool) -> None:
    """Refused: an error in our TOML, a warning (ignored, as Dokku ignores what it does not
    know) in an app.json, so a Dokku app still deploys. Nothing of it is ever run."""
    if t.has("onFailure"):
        if strict:
            t.error("onFailure", ON_FAILURE_REFUSED)
        else:
            t.out.warn(t.key("onFailure"), ON_FAILURE_REFUSED.replace("is not supported", "ignored"))
