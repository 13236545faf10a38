"""Every default value of dockyard's configuration, in one place.

Dokku's own defaults are named after the Dokku setting they mirror.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the CLI reads STATE_DIR without loading the proxy's types
    from supervisor.model.kinds import (
        Balance,
        CheckScheme,
        CheckType,
        ConcurrencyPolicy,
        Network,
        PullPolicy,
        Scheduler,
        TlsMode,
    )

# [server]
LISTEN = "127.0.0.1:8080"
STATE_DIR = ".dockyard"
CONTROL_SOCKET_NAME = "control.sock"  # under state_dir
TIMEZONE = "UTC"
INSTANCE = "dockyard"  # value of the dockyard.instance label
METRICS_LISTEN = None  # e.g. "127.0.0.1:9100"; /metrics is always on the control socket
DASHBOARD_LISTEN = None  # e.g. "127.0.0.1:9200"; None: no dashboard (docs/dashboard.md)
DASHBOARD_REALM = "dockyard dashboard"  # dashboard_auth's realm when none is given
DASHBOARD_NAME = "@dashboard"  # dashboard_host's route and certificate (app names never have "@")
DEPLOY_BRANCHES = ("main", "master")
TLS_LISTEN = None  # e.g. "0.0.0.0:443"; None: no TLS listener
ACME_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"  # Let's Encrypt production
ACME_EMAIL = None
ACME_RENEW_DAYS = 30  # renew this many days before the certificate expires
SCHEDULER: Scheduler = "docker"  # [server] scheduler: what apps without their own use
KEEP_RELEASES = 5  # releases kept per app (Kamal's retain_containers default); older ones and their images pruned
KEEP_CRON_RUNS = 100  # run records kept per cron task (each up to CRON_OUTPUT_KB of output)
CERTS_DIR_NAME = "certs"  # under state_dir: ACME account key, keys and certificates (mode 0600)

# [apps.X]
PORT = 5000  # Dokku passes PORT=5000 to Dockerfile apps by default
RETIRE_AFTER = 60.0  # Dokku's DOKKU_WAIT_TO_RETIRE
STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL on docker stop
DRAIN_TIMEOUT = 30.0  # seconds in-flight requests get after a swap
DEFAULT_CHECKS_WAIT = 10.0  # Dokku's DOKKU_DEFAULT_CHECKS_WAIT: no checks -> wait, then "still running?"
DEPLOY_TIMEOUT = 600.0  # a whole deploy, checks included
NETWORK: Network = "bridge"
RESTART_POLICY = "on-failure:10"  # Dokku's default restart policy
BALANCE: Balance = "round_robin"
PATH_PREFIX = "/"
TLS_MODE: TlsMode = "off"
PULL: PullPolicy = "missing"  # pull the image from its registry only when the engine lacks it
SECRET_BYTES = 32  # app.json `generator: "secret"`: hex of this many random bytes (Dokku: 64 hex chars)
HSTS_MAX_AGE = 31536000  # one year: what `hsts = true` means
# edge policies (proxy/policy.py has the proxy's own defaults; these are what the TOML means)
BUFFER_REQUESTS = True  # as nginx and kamal-proxy: a slow client never holds an app worker
BUFFER_RESPONSES = False
COMPRESS = True  # as the issue (#21) asks: off per app with `compress = false`
SECURITY_HEADERS = False
STRIP_PREFIX = False
REDIRECT_STATUS = 301
AUTH_REALM = "Restricted"

# canary deploys (docs/canary.md)
CANARY_PERCENT = 10.0  # share of new clients routed to the canary
CANARY_FOR = 300.0  # seconds the canary is watched before it is promoted
CANARY_MAX_ERROR_RATE = 0.02  # canary error rate minus the serving release's, at most
CANARY_MAX_LATENCY_RATIO = 1.5  # canary p99 over the serving release's p99, at most
CANARY_MIN_REQUESTS = 50  # a rule needs this many requests on each release to decide
CANARY_LATENCY_SLACK = 0.025  # seconds: a slower p99 by less than this never rolls back
CANARY_REPORT_EVERY = 5.0  # seconds between two comparison lines on the deploy stream

# processes
WEB_PROCESS = "web"
SCALE = 1

# healthchecks (Dokku app.json defaults, as dokku/docker-container-healthchecker applies them:
# attempts 3, timeout 5 s, wait 5 s between attempts, initialDelay 0, path "/", port 5000,
# scheme http, uptime 0; a missing type means a startup check)
CHECK_TYPE: CheckType = "startup"
CHECK_ATTEMPTS = 3
CHECK_TIMEOUT = 5.0
CHECK_WAIT = 5.0
CHECK_INITIAL_DELAY = 0.0
CHECK_PATH = "/"
CHECK_SCHEME: CheckScheme = "http"
CHECK_PERIOD = 10.0  # dockyard: how often liveness/readiness checks run after the deploy

# cron
CRON_CONCURRENCY: ConcurrencyPolicy = "allow"  # Dokku's app.json default
CRON_OUTPUT_KB = 64  # how much output of each run is kept
CRON_MAX_CONCURRENT = 3  # runs of one task at once; an "allow" run due past it is skipped
MAX_CRON_CONCURRENT = 100  # the highest `max_concurrent` a task may set

# ranges of numbers in the config (docs/config.md)
MAX_SECONDS = 86400.0  # every duration key: at most a day
MAX_KEEP = 1000  # keep_releases, keep_cron_runs: at most this many
MAX_SCALE = 1000  # containers of one process type (config, app.json formation, `dockyard scale`)
MAX_CHECK_ATTEMPTS = 1000
MAX_CPUS = 1024.0
MAX_HSTS_AGE = 2 * 31536000  # two years, the longest max-age browsers keep
MIN_HEADER_SIZE = 1024  # [proxy] max_header_size: a request line and a Host header must fit
MAX_HEADER_SIZE = 1 << 20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # metrics_listen elsewhere gets a warning

MAX_BUILD_CONTEXT = 1 << 30  # [server] max_build_context: bytes of a build context (1 GiB)
MAX_BUILD_CONTEXT_CAP = 64 << 30  # the largest max_build_context accepted (64 GiB)
BUILD_TIMEOUT = 1800.0  # [apps.X] build_timeout: seconds a `docker build` may take

# limits on what a pushed repository (or a config) may hand the daemon
MAX_REPO_FILE_BYTES = 1 << 20  # app.json or Procfile: larger is refused (1 MiB)
MAX_CRON_COMMAND = 4096  # characters of a cron task's command (it feeds Dokku's cron id)
MAX_CRON_SCHEDULE = 4096  # characters of a cron schedule
OUTPUT_LINE_MAX = 16384  # bytes: a longer (or unfinished) output line is passed on in pieces
ONEOFF_OUTPUT_KB = 64  # how much of a predeploy/postdeploy container's output is read
CHECK_BODY_MAX = 65536  # bytes of a health check's response body read (for `content`)
CHECK_OUTPUT_MAX = 65536  # bytes of a command check's output kept

# labels every container carries
LABEL_APP = "dockyard.app"
LABEL_PROCESS = "dockyard.process"
LABEL_RELEASE = "dockyard.release"
LABEL_INSTANCE = "dockyard.instance"
LABEL_NODE = "dockyard.node"  # swarm tasks: the node (hostname) the task runs on
LABEL_ROLE = "dockyard.role"  # "app", "oneoff" (predeploy, postdeploy, cron)
PASSIVE_CONFIRM_TIMEOUT = 1.0  # dockyard: the supervisor's own connection confirming a proxy's report
PASSIVE_QUIET = 1.0  # dockyard: seconds one target's further reports are ignored after a confirmation
ONEOFF_CPU_SHARES = 256  # dockyard: CPU weight of one-off containers (cron, predeploy, run); apps: 1024
BUILD_CPU_SHARES = 256  # dockyard: CPU weight of image builds' RUN steps; apps: 1024
CLI_NICE = 10  # dockyard: nice increment of a `dockyard` command (not serve, not loadtest)
START_NICE = 10  # dockyard: nice increment of `serve` until it serves (as root only: base/priority.py)
