"""HTTP Basic authentication per app, against bcrypt entries as Apache's `htpasswd -B` writes them.

Hashing is the `bcrypt` package's (imported on first use, so the proxy runs without it until an
app asks for basic auth). A check runs in the loop's default executor, off the event loop, and a
verified `Authorization` value is remembered for CACHE_SECONDS (keyed by a salted SHA-256 of it,
never the password itself), so bcrypt's cost is paid about once a minute per client, not per
request. Passwords are never logged. Wrong or missing credentials: 401 with WWW-Authenticate.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import time

from .policy import BasicAuth

CACHE_SECONDS = 60.0
CACHE_MAX = 4096
_SALT = os.urandom(16)


def read_htpasswd(path: str) -> tuple[tuple[str, str], ...]:
    """(user, bcrypt hash) of each `user:$2y$...` line; raises OSError, or ValueError naming the
    first line that is not a bcrypt entry (MD5/SHA/crypt entries are refused: use htpasswd -B)."""
    users: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise ValueError(f"line {number} is not user:hash")
            if not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise ValueError(f"line {number} (user {user!r}) is not a bcrypt hash: write it with `htpasswd -B`")
            users.append((user, hashed))
    return tuple(users)


def _verify(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


class Authenticator:
    """One app's users; `check` answers whether an Authorization header value is good."""

    __slots__ = ("auth", "users", "realm_line", "_verified")

    def __init__(self, auth: BasicAuth) -> None:
        self.auth = auth
        self.users: dict[str, bytes] = {u: h.encode() for u, h in auth.users}
        realm = auth.realm.replace("\\", "\\\\").replace('"', '\\"')
        self.realm_line = b'WWW-Authenticate: Basic realm="%s", charset="UTF-8"\r\n' % realm.encode("utf-8")
        self._verified: dict[bytes, float] = {}  # salted digest of the header -> expiry (monotonic)

    def exempt(self, path: str) -> bool:
        for prefix in self.auth.exempt:
            if path == prefix or (path.startswith(prefix) and (prefix.endswith("/") or path[len(prefix)] in "/?")):
                return True
        return False

    async def check(self, header: bytes | None) -> bool:
        if header is None:
            return False
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        import hashlib  # loaded by the first app with basic auth, not by every worker

        key = hashlib.sha256(_SALT + token.strip()).digest()
        now = time.monotonic()
        expiry = self._verified.get(key)
        if expiry is not None and expiry > now:
            return True
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        hashed = self.users.get(user.decode("utf-8", "replace")) if sep else None
        if hashed is None:
            return False
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, _verify, password, hashed)
        if ok:
            if len(self._verified) >= CACHE_MAX:
                self._verified.clear()
            self._verified[key] = now + CACHE_SECONDS
        return ok


def authorization(lines: list[bytes]) -> bytes | None:
    """The Authorization header's value among a request's forwarded header lines."""
    for line in lines:
        if line[:14].lower() == b"authorization:":
            return line[14:].strip()
    return None
