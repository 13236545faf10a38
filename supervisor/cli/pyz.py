"""`make dist`: build dist/dockyard.pyz, a single-file dockyard, with the stdlib's zipapp.

    python -m supervisor.cli.pyz [-o dist/dockyard.pyz]

The archive holds dockyard's own packages (supervisor, proxy, scheduler) and configs/ (the
unit file and the example config that `dockyard install` writes out). It does NOT bundle the
dependencies: several are C extensions (uvloop, orjson, httptools, aiohttp's speedups) that
Python cannot import from inside a zip. It runs with a system Python 3.11+ that has them
installed (`pip install docker aiohttp uvloop orjson apscheduler httptools prometheus-client
cryptography acme josepy`, or Debian's python3-* packages); a missing one is named when
dockyard starts.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

from supervisor.cli.exits import EXIT_FAIL, EXIT_OK
from supervisor.ops import paths

REPO = paths.PACKAGE_ROOT
PACKAGES = ("supervisor", "proxy", "scheduler")
CONFIGS = ("dockyard.service", "example.toml")
INTERPRETER = "/usr/bin/env python3"
DEFAULT_OUTPUT = REPO / "dist" / "dockyard.pyz"
# import name -> what to install, for the message when one is missing
DEPENDENCIES = {
    "docker": "docker",
    "aiohttp": "aiohttp",
    "uvloop": "uvloop",
    "orjson": "orjson",
    "apscheduler": "apscheduler~=3.10",
    "httptools": "httptools",
    "prometheus_client": "prometheus-client",
    "cryptography": "cryptography",
    "acme": "acme",
    "josepy": "josepy",
}

MAIN = '''\
"""dockyard.pyz entry point (built by supervisor/cli/pyz.py)."""
import sys

if sys.version_info < (3, 11):
    sys.exit("dockyard needs Python 3.11 or newer (this is %d.%d)" % sys.version_info[:2])

DEPENDENCIES = {deps!r}


def _run() -> int:
    try:
        from supervisor.cli.main import main
        return main()
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in DEPENDENCIES:
            raise
        wanted = " ".join(DEPENDENCIES.values())
        print(f"dockyard: the Python module {{top!r}} is missing; dockyard.pyz does not bundle "
              f"its dependencies: run `{{sys.executable}} -m pip install {{wanted}}`",
              file=sys.stderr)
        return {fail}  # exits.EXIT_FAIL, written in at build time: importing dockyard just failed


sys.exit(_run())
'''


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo", ".so"))}


def compile_beside_sources(stage: Path) -> None:
    """Write each module's bytecode next to its source (`x.pyc` beside `x.py`, the layout
    zipimport reads; it never writes a cache of its own). Without it every run of the archive
    compiles dockyard's modules from source: `dockyard --help` ~93 -> ~60 ms of CPU. A Python
    whose version differs ignores them (their magic number does not match) and compiles from
    source as before."""
    if not compileall.compile_dir(stage, quiet=1, legacy=True):
        raise RuntimeError(f"compiling the archive's modules failed in {stage}")


def build(output: Path = DEFAULT_OUTPUT, repo: Path = REPO) -> Path:
    """Write the archive to `output` (atomically) and return its path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockyard-pyz-") as tmp:
        stage = Path(tmp) / "app"
        stage.mkdir()
        for package in PACKAGES:
            shutil.copytree(repo / package, stage / package, ignore=_ignore)
        (stage / "configs").mkdir()
        for name in CONFIGS:
            shutil.copyfile(repo / "configs" / name, stage / "configs" / name)
        (stage / "__main__.py").write_text(MAIN.format(deps=DEPENDENCIES, fail=EXIT_FAIL))
        compile_beside_sources(stage)
        partial = output.with_name(output.name + ".tmp")
        zipapp.create_archive(stage, partial, interpreter=INTERPRETER, compressed=True)
        partial.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supervisor.cli.pyz", description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    path = build(args.output)
    print(f"built {path} ({path.stat().st_size // 1024} KiB); run it with a Python 3.11+ that has "
          f"the dependencies: {' '.join(DEPENDENCIES.values())}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
