"""`python -m bench swap --quick` as a smoke test: dockyard fails no request across its swaps.

Only failures are asserted, never timings: CI machines are too noisy for latency goals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.swap import SwapOptions, run_swap_bench

pytestmark = pytest.mark.docker


def test_quick_swap_bench_fails_no_dockyard_request(tmp_path: Path, docker_client: Any) -> None:
    # No TEST_LABEL: another test session's cleanup removes everything carrying it, even mid-run.
    # The bench removes its own containers and images (labelled with its instance) at the end.
    opts = SwapOptions.quick(out=tmp_path)
    summary = run_swap_bench(opts, docker_client)

    systems = {s["system"]: s for s in summary["systems"]}
    assert set(systems) == {"direct", "dockyard", "nginx"}
    dockyard = systems["dockyard"]
    assert dockyard["swaps"]["ok"] == dockyard["swaps"]["planned"] == 3, dockyard["swaps"]
    assert dockyard["requests"] > 0
    assert dockyard["errors"]["total"] == 0, (dockyard["errors"], dockyard["error_samples"])
    for s in systems.values():  # the whole schedule was sent, and nothing else
        assert abs(s["requests"] - opts.rate * s["duration"]) <= 2, s
    assert json.loads((tmp_path / "summary.json").read_text())["meta"]["swaps"] == 3
    assert "| dockyard |" in (tmp_path / "report.md").read_text()
    instance = summary["meta"]["instance"]
    for key in ("dockyard.bench", "dockyard.instance"):
        assert docker_client.containers.list(all=True, filters={"label": f"{key}={instance}"}) == []


def test_quick_restart_bench_fails_no_request_and_keeps_the_containers(tmp_path: Path, docker_client: Any) -> None:
    """`python -m bench restart --quick`, dockyard only: every takeover hands over, the old daemon
    exits 0, the app container is the same one, and no request fails (no timing is asserted)."""
    from bench.restart import restart_options, run_restart_bench

    opts = restart_options(quick=True, systems=("dockyard",), out=tmp_path)
    summary = run_restart_bench(opts, docker_client)

    (dockyard,) = summary["systems"]
    assert dockyard["swaps"]["ok"] == dockyard["swaps"]["planned"] == 3, dockyard["swaps"]
    assert dockyard["containers_unchanged"] and dockyard["old_exit_ok"], dockyard
    assert dockyard["errors"]["total"] == 0, (dockyard["errors"], dockyard["error_samples"])
    assert abs(dockyard["requests"] - opts.rate * dockyard["duration"]) <= 2, dockyard
    assert summary["meta"]["scenario"] == "restart"
    assert "| dockyard |" in (tmp_path / "report.md").read_text()
    instance = summary["meta"]["instance"]
    for key in ("dockyard.bench", "dockyard.instance"):
        assert docker_client.containers.list(all=True, filters={"label": f"{key}={instance}"}) == []


def test_a_missing_nginx_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`python -m bench swap --app nginx` on a machine without nginx (make bench installs it)."""
    from bench import __main__ as bench_main
    from bench import images

    monkeypatch.setattr(images, "NGINX_BINARY", "/nonexistent/sbin/nginx")
    with pytest.raises(SystemExit) as exc:
        bench_main.main(["swap", "--app", "nginx", "--systems", "dockyard", "--swaps", "1", "--out", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("python -m bench swap: /nonexistent/sbin/nginx is missing")
    assert "apt-get install nginx-light" in message and "\n" not in message
