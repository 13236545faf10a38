"""IP allow/deny per app, on the real client address (the peer, or behind `trusted_proxies` the
right-most untrusted X-Forwarded-For entry: `Exchange.client_ip`). Deny wins; a non-empty allow
list admits only its networks. Refused: 403."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .forwarding import networks

if TYPE_CHECKING:
    from .forwarding import Network


class AccessRules:
    __slots__ = ("allow", "deny", "_memo")

    def __init__(self, allow: tuple[str, ...], deny: tuple[str, ...]) -> None:
        self.allow: tuple[Network, ...] = networks(allow)
        self.deny: tuple[Network, ...] = networks(deny)
        self._memo: dict[str, bool] = {}  # client address -> admitted (bounded: cleared when full)

    def admits(self, address: str) -> bool:
        ok = self._memo.get(address)
        if ok is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            ok = self._memo[address] = self._decide(address)
        return ok

    def _decide(self, address: str) -> bool:
        import ipaddress  # loaded with the rules' networks already (forwarding.networks)

        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False  # no address we can check: refused when any rule is set
        if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
            ip = ip.ipv4_mapped  # type: ignore[union-attr]
        for net in self.deny:
            if ip in net:
                return False
        if not self.allow:
            return True
        for net in self.allow:
            if ip in net:
                return True
        return False
