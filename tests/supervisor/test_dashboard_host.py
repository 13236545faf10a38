"""`[server] dashboard_host`: the dashboard on a host of the proxy, behind basic auth and TLS, and
a running canary's two releases side by side. The real proxy, the real dashboard listener and
the real TLS listener in one process, no Docker (the daemon and the browser: test_dashboard_browser.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme

from proxy import Proxy
from proxy.rollout import ReleaseStats
from supervisor.api.dashboard import Dashboard, Sources, make_app, serve
from supervisor.api.dashboard import canary as canary_view
from supervisor.api.dashboard.edge import PROXY_HEADER, ROUTE
from supervisor.api.dashboard.site import Access
from supervisor.deploy.canary import Figures, _line
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import ConfigError
from supervisor.model.spec import CanarySpec, Config
from supervisor.ops.series import Sampler
from supervisor.store.releases import StateStore
from supervisor.tls.service import start_tls
from supervisor.tls.sites import sites
from tests.proxy.utils import TEARDOWN_GRACE
from tests.supervisor.test_dashboard import Runtime, apps
from tests.tls.utils import client_context, write_pair
from tests.utils import make_config

HOST = "dock.test"
USER, PASSWORD = "ops", "correct horse"


def htpasswd(tmp_path: Path) -> str:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "dashboard.htpasswd").write_text(f"{USER}:{hashed}\n")
    return "dashboard.htpasswd"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def events(response: aiohttp.ClientResponse, kind: str, count: int, timeout: float) -> list[str]:
    """The event names of a server-sent event stream, read until `count` of `kind` came."""
    kinds: list[str] = []

    async def read() -> None:
        while kinds.count(kind) < count:
            line = (await response.content.readline()).decode()
            if line.startswith("event: "):
                kinds.append(line[7:].strip())

    await asyncio.wait_for(read(), timeout)
    return kinds


def problems(tmp_path: Path, app_hosts: tuple[str, ...] = ("web.test",), **server: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, {"web": {"image": "web:1", "hosts": list(app_hosts)}}, **server)
    return [str(p) for p in err.value.problems]


# config -----------------------------------------------------------------------------------------


def test_dashboard_host_is_parsed_with_its_users(tmp_path: Path) -> None:
    config = make_config(tmp_path, apps(), dashboard_host="Dock.Test", dashboard_auth={"users_file": htpasswd(tmp_path)})
    site = config.server.dashboard_site
    assert site is not None and site.host == HOST and site.tls == "off" and not site.tls_redirect
    assert [u for u, _ in site.auth.users] == [USER] and site.auth.realm == "dockyard dashboard"
    assert any("clear text" in w for w in config.warnings)  # no TLS on this server
    assert make_config(tmp_path, apps()).server.dashboard_site is None


def test_dashboard_host_without_a_users_file_is_one_clear_line(tmp_path: Path) -> None:
    found = problems(tmp_path, dashboard_host=HOST)
    assert len(found) == 1
    assert "server.dashboard_auth: is required with dashboard_host" in found[0] and "htpasswd -B" in found[0]
    found = problems(tmp_path, dashboard_host=HOST, dashboard_auth={"users_file": "nope"})
    assert len(found) == 1 and "server.dashboard_auth.users_file" in found[0] and "does not exist" in found[0]
    found = problems(tmp_path, dashboard_auth={"users_file": htpasswd(tmp_path)})
    assert len(found) == 1 and "server.dashboard_auth: is only used with dashboard_host" in found[0]


def test_dashboard_host_cannot_be_an_apps_host_a_wildcard_or_have_public_paths(tmp_path: Path) -> None:
    auth = {"users_file": htpasswd(tmp_path)}
    found = problems(tmp_path, ("web.test", "dock.test"), dashboard_host=HOST, dashboard_auth=auth)
    assert len(found) == 1 and "server.dashboard_host" in found[0] and "also a host of app 'web'" in found[0]
    found = problems(tmp_path, dashboard_host="*.test", dashboard_auth=auth)
    assert len(found) == 1 and "not a wildcard" in found[0]
    found = problems(tmp_path, dashboard_host=HOST, dashboard_auth={**auth, "exempt": ["/static"]})
    assert len(found) == 1 and "exempt is not allowed" in found[0]


def test_dashboard_host_uses_the_servers_tls(tmp_path: Path) -> None:
    auth = {"users_file": htpasswd(tmp_path)}
    found = problems(tmp_path, dashboard_host=HOST, dashboard_auth=auth, tls_listen="127.0.0.1:8443")
    assert len(found) == 1 and "server.dashboard_tls: is required when the server has TLS" in found[0]
    found = problems(tmp_path, dashboard_host=HOST, dashboard_auth=auth, dashboard_tls={"tls": "acme"})
    assert len(found) == 1 and "needs [server] tls_listen" in found[0]
    found = problems(tmp_path, dashboard_host=HOST, dashboard_auth=auth, tls_listen="127.0.0.1:8443",
                     dashboard_tls={"tls": "acme", "tls_redirect": False})
    assert len(found) == 1 and "cannot be turned off" in found[0]
    config = make_config(tmp_path, apps(), dashboard_host=HOST, dashboard_auth=auth,
                         tls_listen="127.0.0.1:8443", dashboard_tls={"tls": "acme", "hsts": True})
    site = config.server.dashboard_site
    assert site is not None and site.tls == "acme" and site.tls_redirect and site.hsts == 31536000
    found = sites(config)  # what tls/acme.py installs and orders certificates for
    assert found["@dashboard"].tls == "acme" and found["@dashboard"].hosts == (HOST,) and "web" in found
    assert not any("clear text" in w for w in config.warnings)


# through the proxy ------------------------------------------------------------------------------


@dataclass
class Hosted:
    """The proxy with the dashboard's route (and its TLS listener, if any), the dashboard behind it."""

    proxy: Proxy
    board: Dashboard
    tls: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"


@contextlib.asynccontextmanager
async def dashboard(config: Config, listen: str | None = None) -> AsyncIterator[Hosted]:
    """As the daemon wires them: proxy, TLS (when tls_listen is set), the dashboard and its route."""
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    await proxy.start("127.0.0.1", 0)
    tls = await start_tls(config, proxy)
    sup = Supervisor(config, Runtime(), proxy, state)  # type: ignore[arg-type]
    board = await serve(listen, sup, proxy, site=config.server.dashboard_site, routes=proxy)
    try:
        yield Hosted(proxy, board, tls)
    finally:
        await board.close()
        if tls is not None:
            await tls.close()
        await proxy.stop(TEARDOWN_GRACE)
        state.close()


def hosted_config(tmp_path: Path, **server: Any) -> Config:
    return make_config(tmp_path, apps(), dashboard_host=HOST, dashboard_auth={"users_file": htpasswd(tmp_path)},
                       **server)


@pytest.fixture
async def hosted(tmp_path: Path) -> AsyncIterator[Hosted]:
    async with dashboard(hosted_config(tmp_path)) as h:
        yield h


async def test_the_proxy_asks_for_the_password_and_serves_the_dashboard(hosted: Hosted) -> None:
    service = hosted.proxy.table.services[ROUTE]
    assert service.hosts == (HOST,) and service.targets == (hosted.board.target,)
    assert service.policy is not None and service.policy.basic_auth is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(hosted.url + "/", headers={"Host": HOST}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith('Basic realm="dockyard dashboard"')
            assert "apps" not in await r.text()
        async with session.get(hosted.url + "/", headers={"Host": HOST, "Authorization": basic(USER, "wrong")}) as r:
            assert r.status == 401 and "WWW-Authenticate" in r.headers
        async with session.get(hosted.url + "/apps/web", headers={"Host": HOST, "Authorization": basic("eve", PASSWORD)}) as r:
            assert r.status == 401
        good = {"Host": HOST, "Authorization": basic(USER, PASSWORD)}
        async with session.get(hosted.url + "/", headers=good) as r:
            assert r.status == 200
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert 'data-app="web"' in await r.text()
        async with session.get(hosted.url + "/static/chart.js", headers=good) as r:
            assert r.status == 200 and r.content_type == "text/javascript"
        # a client's own token header is replaced by the proxy's: still the dashboard
        async with session.get(hosted.url + "/apps/web", headers={**good, PROXY_HEADER: "guess"}) as r:
            assert r.status == 200
        # other hosts of the proxy are not the dashboard
        async with session.get(hosted.url + "/", headers={"Host": "web.test", "Authorization": basic(USER, PASSWORD)}) as r:
            assert r.status != 200 or "dockyard dashboard" not in await r.text()


async def test_the_loopback_port_answers_only_the_proxy(hosted: Hosted) -> None:
    direct = f"http://{hosted.board.target}"
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Host": HOST}, {"Host": HOST, PROXY_HEADER: "guess"}, {"Host": "localhost"}):
            async with session.get(direct + "/", headers=headers) as r:
                assert r.status == 403, headers
        async with session.get(direct + "/", headers={"Host": HOST, PROXY_HEADER: hosted.board.access.token}) as r:
            assert r.status == 200  # what the proxy sends
        async with session.get(direct + "/", headers={"Host": "other.test", PROXY_HEADER: hosted.board.access.token}) as r:
            assert r.status == 403


async def test_server_sent_events_pass_through_the_proxy_as_they_come(hosted: Hosted) -> None:
    good = {"Host": HOST, "Authorization": basic(USER, PASSWORD)}
    async with aiohttp.ClientSession() as session:
        async with session.get(hosted.url + "/stream", headers=good) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            # two `apps` events, a second apart, arrive while the stream stays open: not buffered
            kinds = await events(r, "apps", 2, timeout=10)
            assert kinds.count("apps") == 2


async def test_closing_the_dashboard_removes_its_route(tmp_path: Path) -> None:
    async with dashboard(hosted_config(tmp_path), "127.0.0.1:0") as h:
        assert h.board.port != int(h.board.target.rpartition(":")[2])  # dashboard_listen, then the loopback port
        assert ROUTE in h.proxy.table.services
    assert ROUTE not in h.proxy.table.services


def test_access_rules() -> None:
    from aiohttp.test_utils import make_mocked_request

    def allowed(access: Access, host: str, token: str | None = None) -> bool:
        headers = {"Host": host, **({PROXY_HEADER: token} if token is not None else {})}
        return access.allows(make_mocked_request("GET", "/", headers=headers))

    listen_only = Access()
    assert allowed(listen_only, "127.0.0.1:9200") and allowed(listen_only, "localhost")
    assert not allowed(listen_only, "dock.test") and not allowed(listen_only, "dock.test", "")
    proxied = Access(local=False, host=HOST, token="t0ken")
    assert allowed(proxied, "dock.test", "t0ken") and allowed(proxied, "DOCK.test:443", "t0ken")
    assert not allowed(proxied, "127.0.0.1", None) and not allowed(proxied, "dock.test", "t0ke")
    both = Access(local=True, host=HOST, token="t0ken")
    assert allowed(both, "127.0.0.1") and not allowed(both, "dock.test") and allowed(both, "dock.test", "t0ken")


# TLS ---------------------------------------------------------------------------------------------


async def test_with_tls_plain_http_is_redirected_and_https_asks_for_the_password(tmp_path: Path) -> None:
    from tests.tls.test_reload import free_port

    ca = trustme.CA()
    crt, key = write_pair(ca, tmp_path, "dock", HOST)
    tls_port = free_port()
    config = hosted_config(tmp_path, tls_listen=f"127.0.0.1:{tls_port}",
                           dashboard_tls={"tls": "manual", "tls_cert": crt, "tls_key": key, "hsts": 600})
    async with dashboard(config) as h:
        assert h.tls is not None and h.tls.status() == {}  # the dashboard's certificate is installed
        async with aiohttp.ClientSession() as session:
            async with session.get(h.url + "/apps/web?x=1", headers={"Host": HOST}, allow_redirects=False) as r:
                assert r.status == 308
                assert r.headers["Location"] == f"https://{HOST}:{tls_port}/apps/web?x=1"
            https = f"https://127.0.0.1:{tls_port}/"
            ssl = client_context(ca)
            async with session.get(https, headers={"Host": HOST}, ssl=ssl, server_hostname=HOST) as r:
                assert r.status == 401 and "WWW-Authenticate" in r.headers
            async with session.get(https, headers={"Host": HOST, "Authorization": basic(USER, PASSWORD)},
                                   ssl=ssl, server_hostname=HOST) as r:
                assert r.status == 200 and 'data-app="web"' in await r.text()
                assert r.headers["Strict-Transport-Security"].startswith("max-age=600")


# the canary, side by side -----------------------------------------------------------------------


def _traffic(stats: ReleaseStats, requests: int, errors: int, seconds: float) -> None:
    for i in range(requests):
        stats.record(500 if i < errors else 200, seconds)


async def test_a_running_canary_shows_both_releases_side_by_side(tmp_path: Path) -> None:
    config = make_config(tmp_path, apps())
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    sup = Supervisor(config, Runtime(), proxy, state)  # type: ignore[arg-type]
    proxy.set_app("web", ["web.test"], ["127.0.0.1:1"], release="1", canary_release="2",
                  canary_targets=["127.0.0.1:2"], canary_percent=20)
    sampler = Sampler(proxy, canaries=lambda: canary_view.releases_of(sup))
    app = make_app(Sources(sup, sampler, sup.events))
    spec = CanarySpec(percent=20, window=60)
    sup.ctx.canaries.live["web"] = _line(1, 2, Figures(80, 0, 0, 0.004, 0.009), Figures(20, 2, 0, 0.02, 0.05), 12.5, spec)
    old, new = proxy.state.rollouts.counters("web", "1"), proxy.state.rollouts.counters("web", "2")
    sampler.sample(1000.0)
    _traffic(old, 80, 0, 0.004)
    _traffic(new, 20, 2, 0.04)
    sampler.sample(1001.0)
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/apps/web")).text()
        assert 'id="canary-table"' in page and "serving r1" in page and "canary r2" in page
        assert "12.5 s of 60" in page
        feed = await (await client.get("/apps/web/series.json")).json()
        serving, fresh = feed["canary"]["releases"]
        assert (serving["release"], serving["share"], fresh["release"], fresh["share"]) == (1, 80.0, 2, 20.0)
        assert serving["rate"] == pytest.approx(80.0) and fresh["rate"] == pytest.approx(20.0)
        assert serving["errors"] == 0 and fresh["errors"] == pytest.approx(2.0)
        assert serving["p99"] < 0.005 < 0.025 < fresh["p50"] <= fresh["p99"] <= 0.05
        assert fresh["requests"] == 20 and fresh["error_rate"] == 0.1
        assert fresh["points"]["rate"] == [pytest.approx(20.0)] and serving["points"]["t"] == [1001.0]
        # the live stream's state carries the table, rendered and escaped by the server
        async with client.get("/apps/web/stream") as r:
            text = ""
            while "event: state" not in text:
                text += (await r.content.readline()).decode()
            line = (await r.content.readline()).decode()
            assert "canary-table" in line and "serving r1" in line
            assert '"canary_releases":{"serving":"1","canary":"2"}' in line
            # each release's points, for the chart's two extra lines
            assert "event: releases" in text and '"1":{"t":[1001.0]' in text and '"2":{"t":[1001.0]' in text
        # the canary ends: the per-release rings go, and the page says none runs
        sup.ctx.canaries.live.clear()
        sampler.sample(1002.0)
        assert sampler.releases == {}
        feed = await (await client.get("/apps/web/series.json")).json()
        assert feed["canary"] is None
        assert "no canary running" in await (await client.get("/apps/web")).text()
    state.close()
