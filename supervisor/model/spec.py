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
from proxy.policy import BasicAuth, Policy
from supervisor.model import defaults
from supervisor.model.kinds import (
    Balance,
    CheckScheme,
    CheckType,
    ConcurrencyPolicy,
    CronSource,
    Network,
    PullPolicy,
    Scheduler,
    TlsMode,
)


@dataclass(frozen=True, slots=True)
class DashboardSite:
    """`[server] dashboard_host`: the dashboard served on a host of the proxy, behind basic auth
    (`dashboard_auth`) and, when the server has TLS, HTTPS with a redirect (`dashboard_tls`)."""

    host: str
    auth: BasicAuth
    tls: TlsMode = defaults.TLS_MODE
    tls_cert: str | None = None  # manual mode: PEM certificate chain (absolute path)
    tls_key: str | None = None
    hsts: int | None = None  # Strict-Transport-Security max-age; None: no header

    @property
    def tls_redirect(self) -> bool:
        """Plain HTTP always gets a 308 to https when the dashboard has TLS: credentials never
        travel in clear text where they need not."""
        return self.tls != "off"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    listen: str = defaults.LISTEN
    state_dir: Path = Path(defaults.STATE_DIR)
    control_socket: Path = Path(defaults.STATE_DIR) / defaults.CONTROL_SOCKET_NAME
    timezone: str = defaults.TIMEZONE
    instance: str = defaults.INSTANCE
    metrics_listen: str | None = defaults.METRICS_LISTEN  # host:port for GET /metrics; None: socket only
    dashboard_listen: str | None = defaults.DASHBOARD_LISTEN  # host:port of the dashboard; None: off
    dashboard_site: DashboardSite | None = None  # the dashboard on a host of the proxy; None: not
    tls_listen: str | None = defaults.TLS_LISTEN  # host:port of the TLS listener; None: no TLS
    acme_directory: str = defaults.ACME_DIRECTORY
    acme_email: str | None = defaults.ACME_EMAIL
    acme_renew_days: int = defaults.ACME_RENEW_DAYS
    scheduler: Scheduler = defaults.SCHEDULER  # the default of apps without `scheduler`
    max_build_context: int = defaults.MAX_BUILD_CONTEXT  # bytes; also git's receive.maxInputSize
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
    # No on_failure: Dokku's onFailure is refused in TOML, ignored in app.json (config/healthcheck.py)


@dataclass(frozen=True, slots=True)
class CronSpec:
    id: str
    command: str
    schedule: str  # 5-field cron, or @hourly/@daily/@weekly/@monthly/@yearly
    concurrency_policy: ConcurrencyPolicy = defaults.CRON_CONCURRENCY
    timeout: float | None = None  # seconds; None: no limit
    source: CronSource = "config"
    max_concurrent: int = defaults.CRON_MAX_CONCURRENT  # runs at once; more are skipped


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    memory: str | None = None  # Docker syntax: "256m", "1g"
    cpus: float | None = None


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """A canary deploy: `percent` of new clients go to the new release for `window` seconds,
    then it is promoted unless it did worse than the rules allow (docs/canary.md)."""

    percent: float = defaults.CANARY_PERCENT
    window: float = defaults.CANARY_FOR  # TOML and CLI: `for`
    max_error_rate: float = defaults.CANARY_MAX_ERROR_RATE
    max_latency_ratio: float = defaults.CANARY_MAX_LATENCY_RATIO
    min_requests: int = defaults.CANARY_MIN_REQUESTS

    def validate(self) -> list[tuple[str, str]]:
        """(key, message) of each bad value; empty when all are good."""
        problems = []
        if not 0 < self.percent < 100:
            problems.append(("percent", f"must be a number between 0 and 100 (exclusive), got {self.percent:g}"))
        if self.window <= 0:
            problems.append(("for", f"must be a positive number of seconds, got {self.window:g}"))
        if not 0 <= self.max_error_rate <= 1:
            problems.append(("max_error_rate", f"must be a fraction 0-1, got {self.max_error_rate:g}"))
        if self.max_latency_ratio < 1:
            problems.append(("max_latency_ratio", f"must be a ratio >= 1, got {self.max_latency_ratio:g}"))
        if self.min_requests < 1:
            problems.append(("min_requests", f"must be a positive integer, got {self.min_requests}"))
        return problems


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
    build_timeout: float = defaults.BUILD_TIMEOUT  # a `docker build` (git push, --build)
    network: Network = defaults.NETWORK
    balance: Balance = defaults.BALANCE
    restart: str = defaults.RESTART_POLICY
    scheduler: Scheduler = defaults.SCHEDULER  # docker: containers; swarm: a service per release x process
    placement: tuple[str, ...] = ()  # swarm placement constraints: "node.labels.tier==web"
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    env_file: str | None = None  # a dotenv file (absolute path), read at each deploy: docs/env.md
    generate_env: tuple[str, ...] = ()  # app.json `generator: "secret"` vars: generated once, kept
    pull: PullPolicy = defaults.PULL
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
    canary: CanarySpec | None = None  # every deploy of the app is a canary (docs/canary.md)
    error_pages: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))  # status -> HTML
    policy: Policy = field(default_factory=Policy)  # edge policies (docs/config.md), given to the proxy
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
class RegistrySpec:
    """`[registries."HOST"]`: the login dockyard gives the engine to pull images from HOST."""

    host: str
    username: str
    password_file: str  # absolute path, mode 0600; read at each pull


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerSpec
    proxy: ProxyOptions
    apps: Mapping[str, AppSpec]
    warnings: tuple[str, ...] = ()
    registries: Mapping[str, RegistrySpec] = field(default_factory=lambda: MappingProxyType({}))
