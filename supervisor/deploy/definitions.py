"""What each app is: the config file's definition, with its serving release's repository files.

An app built from a repository (`git push`, `deploy --build`) is defined by the config file
(`base`) merged with the Procfile and app.json its serving release was built from (kept in
SQLite with the release). `config` is that merge for every app; everything but a new build uses
it. Listeners hear of every change (the scheduler reloads its cron tasks).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from types import MappingProxyType

from supervisor.config.repo import with_repo
from supervisor.model.errors import DockyardError, UnknownApp
from supervisor.model.release import RepoFiles
from supervisor.model.spec import AppSpec, Config
from supervisor.store.releases import StateStore

log = logging.getLogger("dockyard.supervisor")


class Definitions:
    def __init__(self, config: Config, state: StateStore) -> None:
        self._repos: dict[str, RepoFiles] = {}
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

    def effective(self, config: Config) -> Config:
        """`config` with each repository-built app's Procfile and app.json merged in."""
        apps = dict(config.apps)
        for name, files in self._repos.items():
            if name in apps:
                try:
                    apps[name] = with_repo(apps[name], files)
                except DockyardError as exc:  # valid when pushed; keep serving the config's
                    log.warning("repository files ignored app=%s error=%s", name, exc)
        return dataclasses.replace(config, apps=MappingProxyType(apps))

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
