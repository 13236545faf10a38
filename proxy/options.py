"""Options of the reverse proxy, with their defaults. Filled from the `[proxy]` table.

Each limit, its default and nginx's equivalent are listed in docs/proxy.md ("Security").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Defaults, named (as kamal-proxy names its own).
MAX_BODY_SIZE = 1 << 30  # 1 GiB; 0 means unlimited
MAX_HEADER_SIZE = 16 * 1024  # bytes of request line + headers -> 431 above it
MAX_RESPONSE_HEADER_SIZE = 64 * 1024  # bytes of a backend's status line + headers -> 502 above it
CLIENT_HEADER_TIMEOUT = 10.0  # seconds to send the request head (slowloris guard)
CLIENT_BODY_TIMEOUT = 60.0  # seconds between two reads of a request body -> 408 (nginx: 60 s)
CLIENT_IDLE_TIMEOUT = 75.0  # keep-alive idle timeout for client connections
SEND_TIMEOUT = 60.0  # seconds without progress writing to a client -> closed (nginx: 60 s)
TUNNEL_IDLE_TIMEOUT = 600.0  # WebSockets and other tunnels: no byte either way -> closed
UPSTREAM_CONNECT_TIMEOUT = 5.0
UPSTREAM_RESPONSE_TIMEOUT = 60.0  # until the response head arrives -> 504
UPSTREAM_IDLE_TIMEOUT = 4.0  # pooled upstream connections; below common app keep-alives (5 s)
MAX_CONNECTIONS = 16384  # client connections at once (lowered to fit RLIMIT_NOFILE at start)
MAX_CONNECTIONS_PER_IP = 1024  # client connections at once from one address (0: no limit)
TRUSTED_PROXIES: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For/-Proto are believed
ACCESS_LOG = False
WORKERS: int | str = "auto"  # proxy worker processes; "auto": the CPU count, at most WORKERS_AUTO_MAX
WORKERS_AUTO_MAX = 8
# nice value of each worker process (nginx: `worker_priority`, default 0 there). Below 0, the data
# plane wins the CPU from the supervisor, its builds and one-off containers when the box is busy.
# Needs root or CAP_SYS_NICE; otherwise the workers run at the supervisor's priority (logged).
WORKER_PRIORITY = -5

# Fixed limits (not options).
MAX_PIPELINED = 16  # requests queued per client connection behind the one being answered
MAX_UPGRADE_BUFFER = 64 * 1024  # client bytes held after an Upgrade head until the tunnel starts
FD_RESERVE = 256  # descriptors kept for the supervisor (Docker, git, SQLite, subprocesses)


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    max_body_size: int = MAX_BODY_SIZE
    max_header_size: int = MAX_HEADER_SIZE
    max_response_header_size: int = MAX_RESPONSE_HEADER_SIZE
    client_header_timeout: float = CLIENT_HEADER_TIMEOUT
    client_body_timeout: float = CLIENT_BODY_TIMEOUT
    client_idle_timeout: float = CLIENT_IDLE_TIMEOUT
    send_timeout: float = SEND_TIMEOUT
    tunnel_idle_timeout: float = TUNNEL_IDLE_TIMEOUT
    upstream_connect_timeout: float = UPSTREAM_CONNECT_TIMEOUT
    upstream_response_timeout: float = UPSTREAM_RESPONSE_TIMEOUT
    upstream_idle_timeout: float = UPSTREAM_IDLE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_connections_per_ip: int = MAX_CONNECTIONS_PER_IP
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES
    access_log: bool = ACCESS_LOG
    workers: int | str = WORKERS  # `dockyard serve` only: 0 runs the proxy in the supervisor's process
    worker_priority: int = WORKER_PRIORITY  # nice value of the worker processes (-20..19)

    def worker_count(self) -> int:
        """How many worker processes `dockyard serve` runs (0: the proxy in-process)."""
        if self.workers == "auto":
            return min(os.cpu_count() or 1, WORKERS_AUTO_MAX)
        return int(self.workers)

    def validate(self) -> list[tuple[str, str]]:
        """Return (key, message) for every invalid option."""
        problems: list[tuple[str, str]] = []
        for key in ("max_body_size", "max_header_size", "max_connections_per_ip"):
            value = getattr(self, key)
            if value < 0:
                problems.append((key, f"must be >= 0, got {value}"))
        for key in ("max_response_header_size", "max_connections"):
            value = getattr(self, key)
            if value < 1:
                problems.append((key, f"must be >= 1, got {value}"))
        for key in (
            "client_header_timeout",
            "client_body_timeout",
            "client_idle_timeout",
            "send_timeout",
            "tunnel_idle_timeout",
            "upstream_connect_timeout",
            "upstream_response_timeout",
            "upstream_idle_timeout",
        ):
            value = getattr(self, key)
            if value <= 0:
                problems.append((key, f"must be a positive number of seconds, got {value}"))
        if self.workers != "auto" and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                       or self.workers < 0):
            problems.append(("workers", f"must be \"auto\" or a number >= 0, got {self.workers!r}"))
        if not isinstance(self.worker_priority, int) or isinstance(self.worker_priority, bool) \
                or not -20 <= self.worker_priority <= 19:
            problems.append(("worker_priority", f"must be a nice value from -20 to 19, got {self.worker_priority!r}"))
        for cidr in self.trusted_proxies:
            import ipaddress  # with the first CIDR only: a worker without any does not load it

            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                problems.append(("trusted_proxies", f"not an address or CIDR network: {cidr!r}"))
        return problems
