"""Options of the reverse proxy, with their defaults. Filled from the `[proxy]` table."""

from __future__ import annotations

from dataclasses import dataclass

# Defaults, named (as kamal-proxy names its own).
MAX_BODY_SIZE = 1 << 30  # 1 GiB; 0 means unlimited
MAX_HEADER_SIZE = 16 * 1024  # bytes of request line + headers -> 431 above it
CLIENT_HEADER_TIMEOUT = 10.0  # seconds to send the request head (slowloris guard)
CLIENT_IDLE_TIMEOUT = 75.0  # keep-alive idle timeout for client connections
UPSTREAM_CONNECT_TIMEOUT = 5.0
UPSTREAM_RESPONSE_TIMEOUT = 60.0  # until the response head arrives -> 504
UPSTREAM_IDLE_TIMEOUT = 4.0  # pooled upstream connections; below common app keep-alives (5 s)
ACCESS_LOG = False


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    max_body_size: int = MAX_BODY_SIZE
    max_header_size: int = MAX_HEADER_SIZE
    client_header_timeout: float = CLIENT_HEADER_TIMEOUT
    client_idle_timeout: float = CLIENT_IDLE_TIMEOUT
    upstream_connect_timeout: float = UPSTREAM_CONNECT_TIMEOUT
    upstream_response_timeout: float = UPSTREAM_RESPONSE_TIMEOUT
    upstream_idle_timeout: float = UPSTREAM_IDLE_TIMEOUT
    access_log: bool = ACCESS_LOG

    def validate(self) -> list[tuple[str, str]]:
        """Return (key, message) for every invalid option."""
        problems: list[tuple[str, str]] = []
        for key in ("max_body_size", "max_header_size"):
            value = getattr(self, key)
            if value < 0:
                problems.append((key, f"must be >= 0, got {value}"))
        for key in (
            "client_header_timeout",
            "client_idle_timeout",
            "upstream_connect_timeout",
            "upstream_response_timeout",
            "upstream_idle_timeout",
        ):
            value = getattr(self, key)
            if value <= 0:
                problems.append((key, f"must be a positive number of seconds, got {value}"))
        return problems
