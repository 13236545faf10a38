"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright) against
`dockyard serve` as a real process on real Docker.

Without Chromium (or Playwright) these tests skip with the reason; under CI=true they fail,
as the Docker tests do. Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, REPO
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    wait_serving,
    write_config,
)
from tests.utils import Load

pytestmark = pytest.mark.docker

CHROMIUM = os.environ.get("DOCKYARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
SECRET = "tok-7c1e-Secret-Value-55"
SWAP_BUDGET = 2.0  # seconds from the swap to the page showing it (the budget)
# seconds of traffic before and after the deploy; longer for a screenshot for the docs
TRAFFIC = float(os.environ.get("DOCKYARD_DASHBOARD_TRAFFIC", "3"))


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it (scripts/ensure-test-deps.sh installs chromium)")
    pytest.skip(f"{reason}; run `apt-get install chromium` (make test does)")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    async with async_playwright() as p:
        # The system browser: Playwright never downloads one here.
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


class Watched:
    """A page with every request, console error and page error recorded."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(self.origin + "/")]

    async def script_errors(self) -> list[str]:
        return list(await self.page.evaluate("window.dockyard ? window.dockyard.errors : ['no script']"))


def dashboard_config(tmp_path: Path, apps: str) -> tuple[Path, int, int]:
    port, board = free_port(), free_port()
    config = write_config(tmp_path, port, apps)
    text = config.read_text().replace(
        'state_dir = "state"\n', f'state_dir = "state"\ndashboard_listen = "127.0.0.1:{board}"\n', 1)
    config.write_text(text)
    return config, port, board


def deploy(config: Path, app: str, image: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "deploy", app, "--image", image, "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


async def finished(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    out = await asyncio.wait_for(asyncio.to_thread(proc.communicate), timeout)
    return proc.returncode, out[0].decode(errors="replace")


async def until(page: Any, expression: str, timeout: float = 30) -> None:
    """Poll a JS expression until it is truthy. (Not `page.wait_for_function`: its polling
    evaluates a string inside the page, which the dashboard's CSP rightly refuses.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {expression}")


async def seen(page: Any, what: str, timeout: float = 30) -> dict[str, Any]:
    """The first entry of window.dockyard.seen matching the JS predicate `what` (on `s`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await page.evaluate(f"window.dockyard.seen.filter((s) => {what})")
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page never saw {what}: {await page.evaluate('window.dockyard.seen')}")


async def test_dashboard_shows_apps_and_draws_a_deploy_live_in_chromium(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], browser: Any
) -> None:
    apps = app_toml("web", app_images["v1"], f'API_TOKEN = "{SECRET}"') + app_toml("api", app_images["v1"])
    config, port, board = dashboard_config(tmp_path, apps)
    origin = f"http://127.0.0.1:{board}"
    ARTIFACTS.mkdir(exist_ok=True)
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        await wait_serving(daemon.client(), "api", 2)
        page = Watched(await browser.new_page(viewport={"width": 1400, "height": 1000}), origin)

        # the overview lists the apps with their serving release
        await page.page.goto(origin + "/")
        rows = await page.page.locator("#apps tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.app, r.querySelector('[data-field=release]').textContent])")
        assert sorted(rows) == [["api", "r1"], ["web", "r1"]]
        await page.page.wait_for_selector("#live.on")
        assert SECRET not in await page.page.content()
        await page.page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

        async with Load(f"http://127.0.0.1:{port}/", "web.test", rate=40, workers=4) as load:
            # the app page, live; then a deploy under light load
            await page.page.goto(origin + "/apps/web")
            await page.page.wait_for_selector("#live.on")
            assert await page.page.text_content("#release") == "r1"
            await asyncio.sleep(TRAFFIC)  # some traffic on the chart first
            code, out = await finished(deploy(config, "web", app_images["v2"]))
            assert code == 0, out
            swap = await seen(page.page, "s.what === 'marker' && s.kind === 'swap' && s.release === 2")
            shown = await seen(page.page, "s.what === 'release' && s.release === 2")
            print(f"\nswap marker on the page {swap['at'] - swap['t']:.3f} s after the swap; "
                  f"release r2 after {shown['at'] - swap['t']:.3f} s")
            assert swap["at"] - swap["t"] < SWAP_BUDGET
            assert shown["at"] - swap["t"] < SWAP_BUDGET
            assert await page.page.text_content("#release") == "r2"
            drawn = await page.page.evaluate("window.dockyard.chart.drawn")
            assert "start:2" in drawn["markers"] and "swap:2" in drawn["markers"] and drawn["points"] > 0
            row = page.page.locator("#release-table tbody tr", has_text=app_images["v2"])
            await row.locator(".status-active").wait_for(timeout=5000)
            await page.page.wait_for_selector("#deploy li[data-event=deployed]")
            await seen(page.page, "s.what === 'marker' && s.kind === 'retire'", timeout=20)
            await page.page.locator("#routes td", has_text="r2").wait_for(timeout=5000)
            await until(page.page,
                "[...document.querySelectorAll('#containers td:first-child')].every(td => td.textContent.endsWith('.r2'))")
            await asyncio.sleep(TRAFFIC)  # traffic after the swap on the chart
            await page.page.screenshot(path=str(ARTIFACTS / "dashboard-app.png"), full_page=True)

            # a failed deploy shows its reason, live
            code, out = await finished(deploy(config, "web", "dockyard-no-such-image:404"))
            assert code == 1, out
            failed = await seen(page.page, "s.what === 'marker' && s.kind === 'failed' && s.release === 3")
            assert failed["at"] - failed["t"] < SWAP_BUDGET
            await page.page.wait_for_selector("#deploy li[data-event=failed]:has-text('not found')")
            reason = page.page.locator("#release-table .reason", has_text="dockyard-no-such-image:404")
            await reason.wait_for(timeout=5000)
            assert await page.page.text_content("#release") == "r2"  # the old release still serves
            await page.page.screenshot(path=str(ARTIFACTS / "dashboard-failed.png"), full_page=True)

            # a reload shows the same, from the server
            await page.page.reload()
            await page.page.wait_for_selector("#live.on")
            await until(page.page, "window.dockyard.chart && window.dockyard.chart.drawn")
            assert await page.page.locator("#markers li[data-kind=swap][data-release='2']").count() == 1
            assert await page.page.locator("#markers li[data-kind=failed]", has_text="not found").count() == 1
            assert SECRET not in await page.page.content()

            # the overview's numbers follow the traffic
            await page.page.goto(origin + "/")
            web_rate = page.page.locator("tr[data-app=web] [data-field=rate]")
            await until(page.page,
                "parseFloat(document.querySelector('tr[data-app=web] [data-field=rate]').textContent) > 5")
            assert await page.page.text_content("tr[data-app=web] [data-field=release]") == "r2"
            assert float(await web_rate.text_content() or 0) > 5
            await page.page.screenshot(path=str(ARTIFACTS / "dashboard-overview-load.png"), full_page=True)
        assert load.failures == [], load.failures[:5]

        assert page.foreign() == [], page.foreign()
        assert page.errors == [], page.errors
        assert await page.script_errors() == []
        daemon.signal(15)

