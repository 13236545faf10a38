"""Merge what a pushed repository says about its app (Procfile, app.json) into the config's AppSpec.

Pure: it takes file texts, returns a new AppSpec and warnings, and raises ConfigError for a
Procfile or app.json that Dokku would reject. The config (the TOML, and the app.json it names)
wins wherever both define a thing:

- processes: when a config process has a `command`, the config defines the process types and
  the repository's Procfile is ignored (with a warning). Otherwise (no `processes` table, or
  one that only sets scales) the Procfile defines the types and their commands; scales the
  config sets stay, and process types only the config names are kept.
- scale: the repository app.json `formation` sets the scale of a process type whose config
  scale is the default (1).
- healthchecks: per process type, config checks replace the repository's.
- cron: a non-empty config cron list replaces the repository's.
- predeploy / postdeploy: the config's replace the repository's scripts.dokku ones.
- env: config values win; the repository's app.json `env` values are defaults.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypeVar

from . import defaults
from .appjson import AppJson, parse_app_json
from .procfile import Procfile, parse_procfile
from .spec import AppSpec, HealthCheckSpec, ProcessSpec

PROCFILE = "Procfile"
APP_JSON = "app.json"


@dataclass(frozen=True, slots=True)
class RepoFiles:
    """The texts a build read from its repository, kept with the release (state.repo_files):
    the app's definition is the config's with these merged in, until a deploy without them."""

    procfile: str | None = None
    app_json: str | None = None
    source: str = ""


def with_repo(app: AppSpec, files: RepoFiles) -> AppSpec:
    """`app` with a release's repository files merged in (they were valid when pushed)."""
    return merge_repo(app, procfile=files.procfile, app_json=files.app_json, source=files.source).spec


@dataclass(frozen=True, slots=True)
class RepoApp:
    spec: AppSpec
    warnings: tuple[str, ...] = ()


def config_defines_processes(app: AppSpec) -> bool:
    """True when the config gave at least one process a command (so it owns the process types)."""
    return any(p.command is not None for p in app.processes.values())


def merge_repo(
    app: AppSpec, *, procfile: str | None = None, app_json: str | None = None, source: str = ""
) -> RepoApp:
    """`app` with the repository's Procfile and app.json texts merged in (None: no such file)."""
    where = f"{source}:" if source else ""
    warnings: list[str] = []
    processes = dict(app.processes)

    if procfile is not None:
        parsed = _procfile(procfile, f"{where}{PROCFILE}")
        warnings.extend(parsed.warnings)
        if config_defines_processes(app):
            warnings.append(
                f"{where}{PROCFILE}: ignored, the config defines the processes of {app.name!r}"
            )
        else:
            merged = {
                name: ProcessSpec(name, command, _config_scale(app, name))
                for name, command in parsed.items()
            }
            for name, process in processes.items():
                merged.setdefault(name, process)
            processes = merged

    found = _app_json(app_json, f"{where}{APP_JSON}", app.name) if app_json else AppJson()
    warnings.extend(found.warnings)
    for name, quantity in found.formation.items():
        if name in processes and processes[name].scale == defaults.SCALE:
            processes[name] = replace(processes[name], scale=quantity)
        elif name not in processes:
            warnings.append(f"{where}{APP_JSON}: formation for {name!r} ignored: no such process")

    checks: dict[str, tuple[HealthCheckSpec, ...]] = dict(app.healthchecks)
    for name, repo_checks in found.healthchecks.items():
        if name in checks:
            continue
        if name not in processes:
            warnings.append(f"{where}{APP_JSON}: healthchecks for {name!r} ignored: no such process")
            continue
        checks[name] = repo_checks

    env = {**found.env, **app.env}
    for var in found.required_env:
        if var not in env:
            warnings.append(f"{where}{APP_JSON}: {var} is required but has no value; set it in the config's env")

    spec = replace(
        app,
        processes=MappingProxyType(processes),
        healthchecks=MappingProxyType(checks),
        cron=app.cron or found.cron,
        predeploy=app.predeploy or found.predeploy,
        postdeploy=app.postdeploy or found.postdeploy,
        env=MappingProxyType(env),
    )
    return RepoApp(spec, tuple(warnings))


T = TypeVar("T")
PARSED_KEPT = 64  # parsed Procfile/app.json texts kept (a push parses them in a worker thread)
_parsed: OrderedDict[tuple[str, str, str, str], object] = OrderedDict()
_parsed_lock = threading.Lock()


def _memo(kind: str, text: str, where: str, app: str, parse: Callable[[], T]) -> T:
    """Parse once per (text, file name, app): the push parses in a worker thread, and the
    daemon's later merges (after the deploy, at reload) reuse the result on the event loop."""
    key = (kind, hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest(), where, app)
    with _parsed_lock:
        if key in _parsed:
            _parsed.move_to_end(key)
            return _parsed[key]  # type: ignore[return-value]
    result = parse()
    with _parsed_lock:
        _parsed[key] = result
        while len(_parsed) > PARSED_KEPT:
            _parsed.popitem(last=False)
    return result


def _procfile(text: str, path: str) -> Procfile:
    return _memo("procfile", text, path, "", lambda: parse_procfile(text, path))


def _app_json(text: str, path: str, app: str) -> AppJson:
    return _memo("app.json", text, path, app, lambda: parse_app_json(text, path, app=app))


def _config_scale(app: AppSpec, process: str) -> int:
    current = app.processes.get(process)
    return current.scale if current else defaults.SCALE
