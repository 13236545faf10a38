"""Automatic certificates: an ACME client (the `acme` package, certbot's) answering HTTP-01.

Per app with `tls = "acme"`, `AcmeManager`:
- registers (or finds) the account of `<state_dir>/certs/account.key`;
- orders a certificate for the app's hosts; the HTTP-01 key authorizations are put in
  `proxy.edge.challenges`, which the proxy answers on the plain listener at
  `/.well-known/acme-challenge/<token>`;
- writes `<app>.key` and `<app>.crt` under `<state_dir>/certs/` with mode 0600 (temporary file,
  fsync, rename) and swaps the certificate into the proxy's `CertStore`;
- schedules the renewal with APScheduler `renew_days` before expiry. A failure is logged, kept in
  `status()`, and retried with exponential backoff; the certificate already served stays.

The protocol calls block (requests), so each order runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from proxy.edge import Edge
from proxy.tls import CertStore
from supervisor.config.certs import check_pair, load_cert, not_after, write_private
from supervisor.model import defaults

log = logging.getLogger("dockyard.supervisor")

RETRY_MIN = 300.0  # seconds before the first retry of a failed order; doubles each time
RETRY_MAX = 6 * 3600.0
MIN_GAP = 3600.0  # never renew sooner than this after a success (renew_days >= lifetime)
ORDER_TIMEOUT = 90.0  # seconds for the CA to validate and issue


class AcmeError(Exception):
    """An order that could not complete (no HTTP-01 challenge offered, validation failed...)."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem_key(key: Any) -> bytes:
    return cast(bytes, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))


class AcmeManager:
    def __init__(
        self,
        *,
        directory: str,
        email: str | None,
        certs_dir: Path,
        store: CertStore,
        edge: Edge,
        renew_days: int = defaults.ACME_RENEW_DAYS,
        ca_bundle: str | None = None,  # a CA file for the directory's TLS (tests: pebble)
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        min_gap: float = MIN_GAP,
        order_timeout: float = ORDER_TIMEOUT,
    ) -> None:
        self.directory = directory
        self.email = email
        self.certs_dir = certs_dir
        self.store = store
        self.edge = edge
        self.renew_days = renew_days
        self.ca_bundle = ca_bundle
        self.retry_min, self.retry_max, self.min_gap = retry_min, retry_max, min_gap
        self.order_timeout = order_timeout
        self.apps: dict[str, tuple[str, ...]] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._client: client.ClientV2 | None = None
        self._account_key: jose.JWKRSA | None = None
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._aps = AsyncIOScheduler(timezone=dt.UTC)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, apps: Mapping[str, tuple[str, ...]]) -> None:
        """Serve the certificates already on disk; schedule orders and renewals."""
        self.certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._aps.running:
            self._aps.start()
        for app, hosts in apps.items():
            self.apps[app] = tuple(hosts)
            self._status[app] = {"hosts": list(hosts), "state": "pending", "not_after": None,
                                 "next_attempt": None, "last_error": None, "failures": 0, "renewed_at": None}
            expires = self._load_existing(app)
            due = _utcnow() if expires is None else expires - dt.timedelta(days=self.renew_days)
            self._schedule(app, max(due, _utcnow()))
        log.info("Started ACME directory=%s apps=%s", self.directory, ",".join(apps))

    def forget(self, app: str) -> None:
        """Config reload: `app` no longer uses ACME (its files stay, its renewals stop)."""
        self.apps.pop(app, None)
        self._status.pop(app, None)
        if self._aps.get_job(f"acme:{app}") is not None:
            self._aps.remove_job(f"acme:{app}")
        self.store.remove(app)

    async def close(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
        for task in list(self._running.values()):
            task.cancel()

    def status(self) -> dict[str, dict[str, Any]]:
        return {app: dict(s) for app, s in self._status.items()}

    # -- files --------------------------------------------------------------------------------------
    def paths(self, app: str) -> tuple[Path, Path]:
        return self.certs_dir / f"{app}.crt", self.certs_dir / f"{app}.key"

    def _load_existing(self, app: str) -> dt.datetime | None:
        """Install the app's certificate from disk when it is good for its hosts; its expiry."""
        crt, key = self.paths(app)
        if not crt.exists() or not key.exists():
            return None
        found = check_pair(str(crt), str(key), self.apps[app])
        if found.errors or found.warnings:
            log.warning("ACME certificate on disk not usable app=%s problems=%s", app,
                        "; ".join(m for _, m in found.errors + found.warnings))
            return None
        try:
            self.store.install(app, self.apps[app], str(crt), str(key))
        except (OSError, ValueError) as exc:
            log.warning("ACME certificate on disk not usable app=%s error=%s", app, exc)
            return None
        expires = not_after(load_cert(crt.read_bytes()))
        self._status[app].update(state="valid", not_after=expires.isoformat())
        return expires

    # -- scheduling ---------------------------------------------------------------------------------
    def _schedule(self, app: str, when: dt.datetime) -> None:
        self._status[app]["next_attempt"] = when.isoformat()
        self._aps.add_job(self.renew, "date", run_date=when, args=[app], id=f"acme:{app}",
                          name=f"acme:{app}", replace_existing=True, misfire_grace_time=None)

    async def renew(self, app: str) -> bool:
        """Order a certificate for `app` now (one at a time per app); True when one was installed."""
        running = self._running.get(app)
        if running is None or running.done():
            running = self._running[app] = asyncio.ensure_future(self._renew(app))
        return await asyncio.shield(running)

    async def _renew(self, app: str) -> bool:
        hosts = self.apps[app]
        status = self._status[app]
        log.info("Ordering certificate app=%s hosts=%s", app, ",".join(hosts))
        try:
            key_pem, chain_pem = await asyncio.to_thread(self._order, hosts)
            crt, key = self.paths(app)
            # write both, then build the new context: a bad chain fails before anything is swapped
            write_private(key, key_pem)
            write_private(crt, chain_pem)
            self.store.install(app, hosts, str(crt), str(key))
        except Exception as exc:  # noqa: BLE001 - any failure: keep the old certificate, retry later
            status["failures"] += 1
            status["last_error"] = f"{type(exc).__name__}: {exc}"
            status["state"] = "error" if status["not_after"] is None else "renewal-failed"
            delay = min(self.retry_max, self.retry_min * 2 ** (status["failures"] - 1))
            when = _utcnow() + dt.timedelta(seconds=delay)
            log.error("Ordering certificate failed app=%s failures=%d retry_in=%.0fs error=%s",
                      app, status["failures"], delay, status["last_error"])
            self._schedule(app, when)
            return False
        expires = not_after(load_cert(chain_pem))
        now = _utcnow()
        status.update(state="valid", not_after=expires.isoformat(), last_error=None, failures=0,
                      renewed_at=now.isoformat())
        self._schedule(app, max(expires - dt.timedelta(days=self.renew_days), now + dt.timedelta(seconds=self.min_gap)))
        log.info("Ordered certificate app=%s not_after=%s", app, expires.isoformat())
        return True

    # -- the protocol (worker thread) ----------------------------------------------------------------
    def _acme(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        path = self.certs_dir / "account.key"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_private(path, _pem_key(key))
        jwk = jose.JWKRSA(key=key)
        verify = self.ca_bundle or True
        net = client.ClientNetwork(jwk, user_agent="dockyard", verify_ssl=cast(bool, verify))
        acme = client.ClientV2(client.ClientV2.get_directory(self.directory, net), net)
        registration = messages.NewRegistration.from_data(email=self.email, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as exc:  # the key already has an account
            net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            acme.query_registration(net.account)
        log.info("ACME account ready directory=%s", self.directory)
        self._client, self._account_key = acme, jwk
        return acme

    def _order(self, hosts: tuple[str, ...]) -> tuple[bytes, bytes]:
        acme = self._acme()
        assert self._account_key is not None
        key_pem = _pem_key(ec.generate_private_key(ec.SECP256R1()))
        order = acme.new_order(crypto_util.make_csr(key_pem, list(hosts)))
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                chall = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
                if chall is None:
                    raise AcmeError(f"the CA offers no http-01 challenge for {authz.body.identifier.value}")
                response, validation = chall.response_and_validation(self._account_key)
                token = chall.chall.encode("token")
                self.edge.challenges[token] = validation
                tokens.append(token)
                acme.answer_challenge(chall, response)
            deadline = dt.datetime.now() + dt.timedelta(seconds=self.order_timeout)
            order = acme.poll_and_finalize(order, deadline)
        finally:
            for token in tokens:
                self.edge.challenges.pop(token, None)
        if not order.fullchain_pem:
            raise AcmeError("the CA returned no certificate")
        return key_pem, order.fullchain_pem.encode()
