"""What each app is: the config file's definition, with its serving release's repository files.

An app built from a repository (`git push`, `deploy --build`) is defined by the config file
(`base`) merged with the Procfile and app.json its serving release was built from (kept in
SQLite with the release). `config` is that merge for every app; everything but a new build uses
it. Listeners hear of every change (the scheduler reloads its cron tasks).

Each app's `env` here is its whole environment (config/merge.py `environment`): the config's,
under its `env_file` (read again at every `effective`, so at each deploy), under the env
overlay in SQLite (`dockyard env set`, and app.json `generator: "secret"` values, generated
once here). An env file that cannot be read keeps the app's last good values and is reported
by `env_problem` (a deploy fails with it).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from supervisor.config.dotenv import DotenvError, read_dotenv
from supervisor.config.merge import environment
from supervisor.config.repo import with_repo
from supervisor.model import defaults
from supervisor.model.errors import DockyardError, UnknownApp
from supervisor.model.release import RepoFiles
from supervisor.model.spec import AppSpec, Config
from supervisor.store.releases import StateStore

log = logging.getLogger("dockyard.supervisor")


class Definitions:
    def __init__(self, config: Config, state: StateStore) -> None:
        self._repos: dict[str, RepoFiles] = {}
        self._state = state
        self._env_files: dict[str, dict[str, str]] = {}  # app -> its env file's last good values
        self._env_problems: dict[str, str] = {}
        for name in config.apps:
            current = state.current(name)
            files = state.repo_files(name, current.number) if current else None
            if files is not None:
                self._repos[name] = files
        self.base = config
        self.config = self.effective(config)
        self.on_change: list[Callable[[Config], None]] = []

    def app(self, name: str) -> AppSpec:
        """The app as it is deployed: the config's definition with its repository files merged."""
        try:
            return self.config.apps[name]
        except KeyError:
            raise UnknownApp(f"unknown app {name!r} (not in {self.config.path})") from None

    def base_app(self, name: str) -> AppSpec:
        """The app as the config file alone defines it (a new build merges its files into this)."""
        self.app(name)
        return self.base.apps[name]

    def repo(self, name: str) -> RepoFiles | None:
        """The repository files the app's serving release was built from, if any."""
        return self._repos.get(name)

    def effective(self, config: Config, *, preview: bool = False) -> Config:
        """`config` with each repository-built app's Procfile and app.json merged in."""
        apps = dict(config.apps)
        for name, files in self._repos.items():
            if name in apps:
                try:
                    apps[name] = with_repo(apps[name], files)
                except DockyardError as exc:  # valid when pushed; keep serving the config's
                    log.warning("repository files ignored app=%s error=%s", name, exc)
        for name, app in apps.items():
            apps[name] = self.with_env(app, preview=preview)
        return dataclasses.replace(config, apps=MappingProxyType(apps))

    def with_env(self, app: AppSpec, *, preview: bool = False) -> AppSpec:
        """`app` with its whole environment; its env file read now (see `env_problem`).
        `preview` (`dockyard plan`): nothing generated, nothing remembered."""
        return dataclasses.replace(app, env=MappingProxyType(self._environment(app, preview)))

    def _environment(self, app: AppSpec, preview: bool = False) -> dict[str, str]:
        overlay = self._state.overlay.env(app.name)
        missing = [k for k in app.generate_env if k not in overlay and k not in app.env]
        if preview:
            file_env: dict[str, str] = {}
            if app.env_file:
                try:
                    file_env = read_dotenv(Path(app.env_file))
                except DotenvError:
                    file_env = self._env_files.get(app.name, {})
            return environment(app.env, file_env, overlay)
        if missing:  # generated once, then kept: a restart or a reload must not change them
            fresh = {k: secrets.token_hex(defaults.SECRET_BYTES) for k in missing}
            overlay = self._state.overlay.add_env_once(app.name, fresh)
            log.info("generated env app=%s keys=%s", app.name, ",".join(missing))
        file_env = {}
        self._env_problems.pop(app.name, None)
        if app.env_file:
            try:
                file_env = self._env_files[app.name] = read_dotenv(Path(app.env_file))
            except DotenvError as exc:
                self._env_problems[app.name] = str(exc)
                file_env = self._env_files.get(app.name, {})
                log.warning("env file not read app=%s error=%s", app.name, exc)
        return environment(app.env, file_env, overlay)

    def env_problem(self, name: str) -> str | None:
        """Why the app's env file could not be read at the last refresh, or None."""
        return self._env_problems.get(name)

    def env_layers(self, name: str) -> dict[str, tuple[str, str]]:
        """KEY -> (where its value comes from, the value): config, env_file or overlay."""
        app = self.base_app(name)
        files = self._repos.get(name)
        if files is not None:
            try:
                app = with_repo(app, files)
            except DockyardError:
                pass
        layers = {k: ("config", v) for k, v in app.env.items()}
        layers.update({k: ("env_file", v) for k, v in self._env_files.get(name, {}).items()})
        layers.update({k: ("overlay", v) for k, v in self._state.overlay.env(name).items()})
        return dict(sorted(layers.items()))

    def refresh(self) -> None:
        """Evaluate the definitions again: env files re-read, the overlay's changes in."""
        self.replace(self.base)

    def settle_repo(self, name: str, files: RepoFiles | None) -> None:
        """After a successful deploy: `files` (or none) define the app from now on."""
        if self._repos.get(name) == files:
            return
        if files is None:
            self._repos.pop(name, None)
        else:
            self._repos[name] = files
        self.replace(self.base)

    def replace(self, config: Config) -> None:
        """A new config file (reload): the definitions are it plus the repository files."""
        self.base = config
        self.config = self.effective(config)
        for listener in self.on_change:
            listener(self.config)
