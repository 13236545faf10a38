"""What the exchange needs of a `Policy` at request time, worked out once per `set_app`:
networks parsed, header lines built, the users loaded. Derived from the Policy (a worker
process receiving a route table rebuilds it with `make_service`), never compared."""

from __future__ import annotations

from .policy import Policy
from .policy_access import AccessRules
from .policy_auth import Authenticator
from .policy_headers import hsts_preset, lines_of, names_of, response_pairs


class PolicySteps:
    __slots__ = ("policy", "every_request", "access", "auth", "response_lines", "response_names",
                 "hsts_line", "request_lines", "request_names", "buffer", "max_body_size", "compress", "compress_min_size", "buffer_responses",
                 "response_timeout", "body_timeout")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.access: AccessRules | None = AccessRules(policy.allow, policy.deny) if policy.allow or policy.deny else None
        self.auth: Authenticator | None = Authenticator(policy.basic_auth) if policy.basic_auth is not None else None
        pairs = response_pairs(policy)
        self.response_lines = lines_of(pairs)
        self.response_names = names_of(pairs)
        self.hsts_line = hsts_preset(policy)
        if self.hsts_line:
            self.response_names = self.response_names | {b"strict-transport-security"}
        self.request_lines = lines_of(policy.request_headers)
        self.request_names = names_of(policy.request_headers)
        self.buffer = policy.buffer_requests
        self.compress = policy.compress
        self.buffer_responses = policy.buffer_responses
        self.compress_min_size = policy.compress_min_size
        self.max_body_size = policy.max_body_size
        self.response_timeout = policy.upstream_response_timeout
        self.body_timeout = policy.client_body_timeout
        # Requests without a body take the fast path unless a step acts on every request.
        self.every_request = bool(
            self.access is not None or self.auth is not None or policy.canonical_host or policy.redirects
            or policy.strip_prefix or pairs or self.hsts_line or self.request_lines or self.response_timeout
            or policy.buffer_responses
        )  # (compress works in the response callbacks: the fast path keeps it)
