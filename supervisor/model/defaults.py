"""Every default value of dockyard's configuration, in one place.

Dokku's own defaults are named after the Dokku setting they mirror.
"""

from __future__ import annotations

from supervisor.model.kinds import (
    Balance,
    CheckScheme,
    CheckType,
    ConcurrencyPolicy,
    Network,
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
DEPLOY_BRANCHES = ("main", "master")
TLS_LISTEN = None  # e.g. "0.0.0.0:443"; None: no TLS listener
ACME_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"  # Let's Encrypt production
ACME_EMAIL = None
ACME_RENEW_DAYS = 30  # renew this many days before the certificate expires
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
HSTS_MAX_AGE = 31536000  # one year: what `hsts = true` means

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

# labels every container carries
LABEL_APP = "dockyard.app"
LABEL_PROCESS = "dockyard.process"
LABEL_RELEASE = "dockyard.release"
LABEL_INSTANCE = "dockyard.instance"
LABEL_ROLE = "dockyard.role"  # "app", "oneoff" (predeploy, postdeploy, cron)
