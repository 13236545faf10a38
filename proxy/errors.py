"""Errors of the proxy package. Callers check the classes; detail is in the message."""

from __future__ import annotations


class ProxyError(Exception):
    """Base class of every error the proxy raises."""


class RouteConflictError(ProxyError, ValueError):
    """Two apps claim the same host and path prefix."""


class InvalidRouteError(ProxyError, ValueError):
    """A host, path prefix, target or balance value is malformed."""


class ProxyStateError(ProxyError, RuntimeError):
    """start/stop called in the wrong order."""


class UpstreamError(ProxyError):
    """Talking to a target failed. `retryable` says nothing of the response arrived."""

    status = 502

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"target={target} {detail}")
        self.target = target


class UpstreamConnectError(UpstreamError):
    """The connection to the target was refused or timed out: nothing was sent."""


class UpstreamResetError(UpstreamError):
    """The target reset or closed the connection before the response was complete."""


class UpstreamProtocolError(UpstreamError):
    """The target sent something that is not HTTP/1.x."""


class UpstreamTimeoutError(UpstreamError):
    """The response head did not arrive within upstream_response_timeout."""

    status = 504


class ClientRequestError(ProxyError):
    """The client's request is unacceptable; carries the status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class PipelineFull(ProxyError):
    """A client pipelined more requests than the proxy queues (options.MAX_PIPELINED)."""
