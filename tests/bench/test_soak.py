"""bench/soak.py without Docker: its config stays valid, its process sampling reads /proc."""

from __future__ import annotations

import os
from pathlib import Path

from bench.soak import ALIAS, HOST, rss_and_fds, write_config
from supervisor.config.loader import load_config


def test_the_soak_config_is_valid_with_and_without_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.toml"
    for alias in (False, True):
        write_config(path, 8099, "soak-x", "img:0", alias)
        app = load_config(path).apps["web"]
        assert app.hosts == ((HOST, ALIAS) if alias else (HOST,))
        assert [t.schedule for t in app.cron] == ["* * * * *"]


def test_rss_and_fds_of_this_process() -> None:
    rss, fds = rss_and_fds(os.getpid())
    assert rss > 10 and fds > 3
