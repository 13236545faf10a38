"""The compiled proxy and its pure-Python fallback (proxy/compiled.py): which one is imported, when."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import compiled

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def imported_from(env: dict[str, str]) -> tuple[bool, str]:
    code = "import sys, proxy.compiled as c, proxy.proxy; print(c.is_compiled(), sys.modules['proxy.exchange'].__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", out[1]


def test_switch_off_imports_the_sources() -> None:
    flag, path = imported_from({compiled.ENV_DISABLE: "1"})
    assert not flag
    assert path.endswith("exchange.py")


def test_a_current_build_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.ENV_DISABLE, raising=False)  # also in the suite's pure-Python pass
    if not compiled.use_extensions()[0] and os.environ.get("CI") != "true":
        pytest.skip(f"no current build on this machine: {compiled.describe()}")
    # In CI, `make test` builds it first (make compiled): the suite must exercise it.
    assert compiled.use_extensions() == (True, ""), compiled.describe()
    flag, path = imported_from({compiled.ENV_DISABLE: ""})
    assert flag
    assert path.endswith(SUFFIX)


def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> Path:
    pkg = tmp_path / "proxy"
    pkg.mkdir()
    for name in [*names, "__init__", "compiled", "errors"]:
        (pkg / f"{name}.py").write_text("")
    monkeypatch.setattr(compiled, "PACKAGE_DIR", pkg)
    monkeypatch.delenv(compiled.ENV_DISABLE, raising=False)
    return pkg


def test_modules_leave_out_the_pure_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(tmp_path, monkeypatch, ["server", "exchange"])
    assert compiled.modules() == ["exchange", "server"]


def test_not_built_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = fake_package(tmp_path, monkeypatch, ["server", "exchange"])
    (pkg / f"server{SUFFIX}").write_text("")  # one of two: an incomplete build
    ok, why = compiled.use_extensions()
    assert not ok and "not built" in why
    (pkg / f"exchange{SUFFIX}").write_text("")  # all modules, but no shared runtime library
    assert not compiled.use_extensions()[0]
    (pkg / f"native__mypyc{SUFFIX}").write_text("")
    assert compiled.use_extensions() == (True, "")


def test_a_source_newer_than_its_build_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = fake_package(tmp_path, monkeypatch, ["server", "exchange"])
    (pkg / f"native__mypyc{SUFFIX}").write_text("")
    for name in ("server", "exchange"):
        (pkg / f"{name}{SUFFIX}").write_text("")
        os.utime(pkg / f"{name}.py", (1_000, 1_000))
    assert compiled.use_extensions() == (True, "")
    os.utime(pkg / "server.py")  # edited after the build
    ok, why = compiled.use_extensions()
    assert not ok
    assert "server" in why and "exchange" not in why
    assert compiled.describe().startswith("pure Python (sources changed since the build: server")


def test_the_switch_wins_over_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = fake_package(tmp_path, monkeypatch, ["server"])
    (pkg / f"server{SUFFIX}").write_text("")
    (pkg / f"native__mypyc{SUFFIX}").write_text("")
    os.utime(pkg / "server.py", (1_000, 1_000))
    monkeypatch.setenv(compiled.ENV_DISABLE, "1")
    assert compiled.use_extensions() == (False, f"{compiled.ENV_DISABLE} is set")
