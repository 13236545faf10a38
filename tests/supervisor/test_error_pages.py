"""`error_pages = "DIR"` is read and checked at load (#20); a change of the pages is a reroute."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.loader import load_config
from supervisor.deploy.reconcile import plan
from supervisor.model.errors import ConfigError


def config(tmp_path: Path, pages: str = "pages") -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(f'[apps.web]\nimage = "w"\nhosts = ["w.test"]\nerror_pages = "{pages}"\n')
    return path


def test_pages_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "503.html").write_text("<p>503</p>")
    (tmp_path / "pages" / "404.html").write_text("<p>404</p>")
    (tmp_path / "pages" / "500.html").write_text("ignored")
    old = load_config(config(tmp_path))
    assert dict(old.apps["web"].error_pages) == {404: "<p>404</p>", 503: "<p>503</p>"}
    (tmp_path / "pages" / "503.html").write_text("<p>new 503</p>")
    p = plan(old, load_config(config(tmp_path)))
    assert p.rerouted == ("web",) and p.changed == () and dict(p.keys) == {"web": ("error_pages",)}


def test_bad_page_dirs_are_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"apps.web.error_pages: '.*/missing' is not a directory"):
        load_config(config(tmp_path, "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has none of 404.html, 502.html, 503.html, 504.html"):
        load_config(config(tmp_path, "empty"))
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "502.html").write_bytes(b"x" * (65 * 1024))
    with pytest.raises(ConfigError, match="502.html' is larger than 64 KiB"):
        load_config(config(tmp_path, "big"))
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "504.html").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read .*504.html"):
        load_config(config(tmp_path, "binary"))
