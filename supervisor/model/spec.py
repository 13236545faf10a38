"""Typed, immutable specs: what a user's config file means once it has been loaded.

`supervisor.config.load_config` builds these from TOML (and app.json/Procfile); everything
else in dockyard reads only these values. Defaults live in `supervisor.model.defaults`,
the enums (`Network`, `CheckType`, ...) in `supervisor.model.kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from proxy.options import ProxyOptions
from supervisor.model import defaults
from supervisor.model.kinds import (
    Balance,
    CheckScheme,
    CheckType,
    ConcurrencyPolicy,
    CronSource,
    Network,
    TlsMode,
)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    listen: str = defaults.LISTEN
    state_dir: Path = Path(defaults.STATE_DIR)
    control_socket: Path = Path(defaults.STATE_DIR) / defaults.CONTROL_SOCKET_NAME
    timezone: str = defaults.TIMEZONE
    instance: str = defaults.INSTANCE
    metrics_listen: str | None = defaults.METRICS_LISTEN  # host:port for GET /metrics; None: socket only
    dashboard_listen: str | None = defaults.DASHBOARD_LISTEN  # host:port of the dashboard; None: off
    tls_listen: str | None = defaults.TLS_LISTEN  # host:port of the TLS listener; None: no TLS
    acme_directory: str = defaults.ACME_DIRECTORY
    acme_email: str | None = defaults.ACME_EMAIL
    acme_renew_days: int = defaults.ACME_RENEW_DAYS
    keep_releases: int = defaults.KEEP_RELEASES  # per app, unless the app sets its own
    keep_cron_runs: int = defaults.KEEP_CRON_RUNS  # per cron task


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    # None: the image's own CMD/ENTRYPOINT. str: run by the image's shell. tuple: exec form.
    command: str | tuple[str, ...] | None = None
    scale: int = defaults.SCALE


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    """One Dokku app.json healthcheck, with Dokku's defaults."""

    type: CheckType = defaults.CHECK_TYPE
    name: str = ""
    description: str = ""
    path: str | None = None  # HTTP check when set
    port: int | None = None  # None: the app's port
    scheme: CheckScheme = defaults.CHECK_SCHEME
    http_headers: tuple[tuple[str, str], ...] = ()  # app.json "httpHeaders"
    attempts: int = defaults.CHECK_ATTEMPTS
    timeout: float = defaults.CHECK_TIMEOUT
    wait: float = defaults.CHECK_WAIT
    initial_delay: float = defaults.CHECK_INITIAL_DELAY  # app.json "initialDelay"
    content: str = ""
    uptime: float | None = None  # seconds the container must have been running
    listening: bool = False  # the port accepts TCP connections
    command: tuple[str, ...] = ()  # run inside the container; exit 0 passes
    warn: bool = False  # a failure only warns
    on_failure: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))  # app.json "onFailure", kept as given


@dataclass(frozen=True, slots=True)
class CronSpec:
    id: str
    command: str
    schedule: str  # 5-field cron, or @hourly/@daily/@weekly/@monthly/@yearly
    concurrency_policy: ConcurrencyPolicy = defaults.CRON_CONCURRENCY
    timeout: float | None = None  # seconds; None: no limit
    source: CronSource = "config"


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    memory: str | None = None  # Docker syntax: "256m", "1g"
    cpus: float | None = None


@dataclass(frozen=True, slots=True)
class AppSpec:
    name: str
    image: str | None = None
    build: str | None = None  # a build context path, or "git"
    build_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    hosts: tuple[str, ...] = ()
    path_prefix: str = defaults.PATH_PREFIX
    port: int = defaults.PORT
    retire_after: float = defaults.RETIRE_AFTER
    stop_timeout: float = defaults.STOP_TIMEOUT
    drain_timeout: float = defaults.DRAIN_TIMEOUT
    default_checks_wait: float = defaults.DEFAULT_CHECKS_WAIT
    deploy_timeout: float = defaults.DEPLOY_TIMEOUT
    network: Network = defaults.NETWORK
    balance: Balance = defaults.BALANCE
    restart: str = defaults.RESTART_POLICY
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    volumes: tuple[str, ...] = ()  # Docker -v syntax: "/host/path:/container/path[:ro]"
    app_json: str | None = None
    processes: Mapping[str, ProcessSpec] = field(
        default_factory=lambda: MappingProxyType({"web": ProcessSpec("web")})
    )
    healthchecks: Mapping[str, tuple[HealthCheckSpec, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    cron: tuple[CronSpec, ...] = ()
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    predeploy: str | None = None  # app.json scripts.dokku.predeploy
    postdeploy: str | None = None  # app.json scripts.dokku.postdeploy
    deploy_branch: str | None = None  # None: main or master
    tls: TlsMode = defaults.TLS_MODE
    tls_cert: str | None = None  # manual mode: PEM certificate chain (absolute path)
    tls_key: str | None = None  # manual mode: PEM private key (absolute path)
    tls_redirect: bool = False  # plain HTTP gets a 308 to https (ACME challenges exempt)
    hsts: int | None = None  # Strict-Transport-Security max-age; None: no header
    # Releases kept (deploy/prune.py); None: [server] keep_releases. Not compared: changing it
    # redeploys nothing.
    keep_releases: int | None = field(default=None, compare=False)
    # What the config set itself (the TOML, or the app.json its `app_json` names), which an
    # app.json merged in later (a pushed repository's, supervisor.config.merge) must not
    # override: the process types with a given scale (even 1), and whether `cron` was given
    # (even `cron = []`). Where a value came from, not what the app is: not compared.
    scales_given: tuple[str, ...] = field(default=(), compare=False)
    cron_given: bool = field(default=False, compare=False)

    def checks_for(self, process: str, kind: CheckType = defaults.CHECK_TYPE) -> tuple[HealthCheckSpec, ...]:
        return tuple(c for c in self.healthchecks.get(process, ()) if c.type == kind)

    @property
    def web_scale(self) -> int:
        web = self.processes.get(defaults.WEB_PROCESS)
        return web.scale if web else 0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerSpec
    proxy: ProxyOptions
    apps: Mapping[str, AppSpec]
    warnings: tuple[str, ...] = ()
