"""A real nginx (Debian's nginx-light) in a temporary prefix, swapped the way Dokku does it.

Dokku writes each app's upstream and server blocks to one file included by nginx's main conf.
A deploy starts the new container, waits for its checks, rewrites that file, runs
`nginx -s reload` (the master re-reads the conf, starts new workers, and the old workers finish
their requests and exit), then stops the old container after DOKKU_WAIT_TO_RETIRE.
`NginxProxy` does the same with one upstream server (a container published on 127.0.0.1),
upstream keepalive and one worker; the retire wait and the stop are the caller's part.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .throughput import NGINX, NGINX_CONF, stop, wait_port

APP_CONF = """\
upstream app {{
    server 127.0.0.1:{upstream};
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
}}
"""


class NginxError(RuntimeError):
    """nginx did not start or refused a reload."""


class NginxProxy:
    """One nginx master + 1 worker listening on 127.0.0.1:`port`, proxying to one upstream."""

    def __init__(self, prefix: Path, port: int) -> None:
        self.prefix, self.port = prefix, port
        self.conf = prefix / "nginx.conf"
        self.app_conf = prefix / "app.conf"
        self.upstream = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, upstream: int) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.write_upstream(upstream)
        user = "user root;" if os.geteuid() == 0 else ""
        body = f"include {self.app_conf};"
        self.conf.write_text(NGINX_CONF.format(prefix=self.prefix, body=body, user=user, workers=1))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf)], stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.port)
        except RuntimeError as exc:
            raise NginxError(f"nginx did not start: {self.error_log()}") from exc

    def write_upstream(self, upstream: int) -> None:
        """Rewrite the app's conf atomically (temp file, then rename), as a deploy would."""
        tmp = self.app_conf.with_suffix(".tmp")
        tmp.write_text(APP_CONF.format(upstream=upstream, port=self.port))
        os.replace(tmp, self.app_conf)
        self.upstream = upstream

    def reload(self) -> None:
        """`nginx -s reload`: returns once the master has been signalled (what Dokku waits for)."""
        done = subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-s", "reload"],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise NginxError(f"nginx -s reload failed: {done.stderr.strip()}")

    def swap(self, upstream: int) -> float:
        """Point the upstream at `upstream` and reload; returns the time.monotonic() of the reload."""
        self.write_upstream(upstream)
        self.reload()
        return time.monotonic()

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
