"""A pushed (or uploaded) repository's Procfile and app.json, merged into the config's AppSpec.

Pure: it takes file texts, returns a new AppSpec and warnings, and raises ConfigError for a
Procfile or app.json that Dokku would reject, or a required env var the config leaves unset.
The rules are those of the one merge (supervisor.config.merge), with the config (the TOML and
the app.json it names) on top: where both define a thing, the config wins.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from supervisor.config.appjson import AppJson, parse_app_json
from supervisor.config.merge import merge
from supervisor.config.procfile import Procfile, parse_procfile
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
    parsed = _procfile(procfile, f"{where}{PROCFILE}") if procfile is not None else None
    found = _app_json(app_json, f"{where}{APP_JSON}", app.name) if app_json else AppJson()
    merged = merge(app, found, app_json=f"{where}{APP_JSON}", procfile=parsed, procfile_name=f"{where}{PROCFILE}")
    if merged.errors:
        raise ConfigError(list(merged.errors))
    return RepoApp(merged.spec, (parsed.warnings if parsed else ()) + found.warnings + merged.warnings)


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
