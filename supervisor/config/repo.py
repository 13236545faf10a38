"""A pushed (or uploaded) repository's Procfile and app.json, merged into the config's AppSpec.

Pure: it takes file texts, returns a new AppSpec and warnings, and raises ConfigError for a
Procfile or app.json that Dokku would reject, or a required env var the config leaves unset.
The rules are those of the one merge (supervisor.config.merge), with the config (the TOML and
the app.json it names) on top: where both define a thing, the config wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.config.appjson import AppJson, parse_app_json
from supervisor.config.merge import merge
from supervisor.config.procfile import parse_procfile
from supervisor.model.errors import ConfigError
from supervisor.model.release import RepoFiles
from supervisor.model.spec import AppSpec

PROCFILE = "Procfile"
APP_JSON = "app.json"


def with_repo(app: AppSpec, files: RepoFiles) -> AppSpec:
    """`app` with a release's repository files merged in (ConfigError if they no longer fit)."""
    return merge_repo(app, procfile=files.procfile, app_json=files.app_json, source=files.source).spec


@dataclass(frozen=True, slots=True)
class RepoApp:
    spec: AppSpec
    warnings: tuple[str, ...] = ()


def merge_repo(
    app: AppSpec, *, procfile: str | None = None, app_json: str | None = None, source: str = ""
) -> RepoApp:
    """`app` with the repository's Procfile and app.json texts merged in (None: no such file)."""
    where = f"{source}:" if source else ""
    parsed = parse_procfile(procfile, f"{where}{PROCFILE}") if procfile is not None else None
    found = parse_app_json(app_json, f"{where}{APP_JSON}", app=app.name) if app_json else AppJson()
    merged = merge(app, found, app_json=f"{where}{APP_JSON}", procfile=parsed, procfile_name=f"{where}{PROCFILE}")
    if merged.errors:
        raise ConfigError(list(merged.errors))
    return RepoApp(merged.spec, (parsed.warnings if parsed else ()) + found.warnings + merged.warnings)
