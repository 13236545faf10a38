"""The restart scenario (issue 11): dockyard replacing itself under load, next to an nginx reload.

    direct    straight at one container (the floor; as in the swap scenario)
    dockyard  `dockyard serve` with one app; K times `dockyard serve --takeover -c CONFIG`: the
              new daemon receives the listening socket by SCM_RIGHTS, adopts the container,
              accepts, then tells the old one to release; the old one stops accepting, drains and
              exits 0 (docs/lifecycle.md). The next restart starts once the old daemon has exited.
    nginx     the same app container behind nginx; K times `nginx -s reload` with the conf
              unchanged (nginx's own restart-free replacement of its workers)

Measured like the swap scenario (bench/report.py): errors, then p99 and max in each restart
window, [restart started, switch + 1.5 s], against steady state. The switch is the new daemon's
"old daemon released its listeners" log line, or `nginx -s reload` returning. The app container
is never replaced, so its ids before and after are compared (they must not change).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from supervisor.cli.loadtest.generator import LoadResult

from .nginx import NginxProxy
from .report import Swap
from .swap import DOCKYARD, HOST, REPO, Bench, SwapOptions, drive_swaps, run_scenario, wait_http
from .throughput import free_port

RELEASED = b"old daemon released its listeners"
RESTART_TIMEOUT = 60.0  # for the new daemon's release, and again for the old one's exit


def restart_options(quick: bool = False, **overrides: Any) -> SwapOptions:
    """Defaults: 1,000 req/s, 10 restarts at most one every 3 s; quick: 200 req/s, 3 restarts."""
    base: dict[str, Any] = dict(swaps=10, interval=3.0, command="python -m bench restart")
    if quick:
        return SwapOptions.quick(**{**base, "swaps": 3, **overrides})
    return SwapOptions(**{**base, **overrides})


class Daemon:
    """One `dockyard serve` process; its stderr is copied to the run's daemon log by a thread,
    which notes when the "released" line (takeover done) went by."""

    def __init__(self, config: Path, log_path: Path, takeover: bool) -> None:
        cmd = [DOCKYARD, "serve", *(["--takeover"] if takeover else []), "-c", str(config)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.released_at = float("nan")
        self.released = threading.Event()
        self.tail: list[str] = []
        self._pump = threading.Thread(target=self._copy, args=(log_path,), daemon=True)
        self._pump.start()

    def _copy(self, log_path: Path) -> None:
        stream: IO[bytes] | None = self.proc.stderr
        assert stream is not None
        with open(log_path, "ab") as fh:
            for line in stream:
                if RELEASED in line and not self.released.is_set():
                    self.released_at = time.monotonic()
                    self.released.set()
                fh.write(line)
                fh.flush()
                self.tail = [*self.tail[-2:], line.decode(errors="replace").rstrip()]

    def wait_released(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.released.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
        return True


class RestartBench(Bench):
    def __init__(self, opts: SwapOptions, client: Any = None) -> None:
        super().__init__(opts, client)
        self.daemons: list[Daemon] = []

    def app_containers(self) -> list[str]:
        found = self.client.containers.list(filters={"label": f"dockyard.instance={self.instance}"})
        return sorted(c.id for c in found)

    def run_dockyard(self) -> tuple[LoadResult, list[Swap]]:
        port = free_port()
        config = self.write_config(port)
        log_path = self.out / "dockyard-daemon.log"
        first = Daemon(config, log_path, takeover=False)
        self.daemons.append(first)
        self.daemon = first.proc  # Bench.close() stops the current one
        wait_http(port, "/", HOST, 60, daemon=first.proc)
        before = self.app_containers()
        run = self.start_load(port, self.max_duration())
        exits: list[int | None] = []

        def restart(i: int) -> Swap:
            started = time.monotonic()
            old = self.daemons[-1]
            new = Daemon(config, log_path, takeover=True)
            self.daemons.append(new)
            if not new.wait_released(RESTART_TIMEOUT):
                code = new.proc.poll()
                return Swap(started, float("nan"), time.monotonic(), False,
                            f"no release (new daemon exit {code}): " + " | ".join(new.tail))
            self.daemon = new.proc
            try:
                code = old.proc.wait(RESTART_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = None
            exits.append(code)
            ok = code == 0
            return Swap(started, new.released_at, time.monotonic(), ok,
                        "" if ok else f"old daemon exit {code}: " + " | ".join(old.tail))

        restarts = drive_swaps(run.t0, self.opts, restart)
        result = self.end_load()
        after = self.app_containers()
        self.extra["dockyard"] = {"containers_unchanged": bool(before) and before == after,
                                  "old_exit_ok": bool(exits) and all(c == 0 for c in exits),
                                  "daemons": len(self.daemons)}
        return result, restarts

    def run_nginx(self) -> tuple[LoadResult, list[Swap]]:
        port = free_port()
        container, upstream = self.run_container(self.tags[0])
        self.nginx = NginxProxy(self.tmp / "nginx", port)
        self.nginx.start(upstream)
        wait_http(port, "/", HOST, 30)
        run = self.start_load(port, self.max_duration())

        def reload(i: int) -> Swap:
            started = time.monotonic()
            assert self.nginx is not None
            try:
                self.nginx.reload()  # the conf is unchanged
            except Exception as exc:
                return Swap(started, float("nan"), time.monotonic(), False, repr(exc))
            done = time.monotonic()
            return Swap(started, done, done, True)

        reloads = drive_swaps(run.t0, self.opts, reload)
        result = self.end_load()
        self.nginx.close()
        self.nginx = None
        container.remove(force=True)
        return result, reloads

    def close(self) -> None:
        super().close()
        for d in self.daemons:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


def run_restart_bench(opts: SwapOptions, client: Any = None) -> dict[str, Any]:
    """Run the restart scenario; writes the same files as the swap scenario; returns the summary."""
    return run_scenario(RestartBench(opts, client), "restart", from_start=True)
