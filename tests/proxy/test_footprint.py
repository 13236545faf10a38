"""What a proxy worker loads (issue #19's memory goal; the supervisor's side: tests/supervisor/test_footprint.py).

Each worker is a Python process: every module it imports is resident in each of them. These
tests pin the imports `python -m bench.memory --workers 2` was cut by (docs/architecture.md,
"Memory"), so a convenient top-level import does not quietly bring them back.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from proxy import worker
from proxy.compiled import code_fingerprint

# Loaded on first use only: tempfile (a body spilled to disk), hashlib (basic auth), zstandard
# and brotli (a response compressed with them), orjson (access logs), random (the first canary),
# ipaddress (the first trusted proxy or allow/deny network); never: argparse, importlib.abc
# (importlib.resources, shutil, bz2, lzma come with both), pathlib.
NOT_IN_A_WORKER = ("argparse", "tempfile", "shutil", "hashlib", "zstandard", "brotli", "orjson",
                   "importlib.abc", "importlib.resources", "lzma", "bz2", "pathlib", "random", "ipaddress")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_a_worker_does_not_load_what_it_does_not_use() -> None:
    loaded = loaded_after("import proxy.worker")
    assert "proxy.proxy" in loaded  # it did load the worker
    assert sorted(loaded & set(NOT_IN_A_WORKER)) == []


def test_the_worker_reads_the_flags_the_supervisor_passes() -> None:
    args = worker.parse_args(["--control-dir", "/run/w", "--listen-fd", "3", "--tls-fd", "4", "--options", "{}"])
    assert args == {"--control-dir": "/run/w", "--listen-fd": "3", "--tls-fd": "4", "--options": "{}"}


@pytest.mark.parametrize("argv, says", [
    (["--control-dir", "/run/w"], "--listen-fd are required"),
    (["--control-dir", "/run/w", "--listen-fd", "x"], "--listen-fd are required"),
    (["--control-dir", "/run/w", "--listen-fd", "3", "--tls-fd", "-1"], "--tls-fd must be a number"),
    (["--control-dir", "/run/w", "--listen-fd", "3", "--bogus", "1"], "bad arguments: "),
    (["--control-dir", "/run/w", "--listen-fd"], "bad arguments: "),
])
def test_bad_worker_flags_are_one_usage_line_and_a_reason(argv: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as exc:
        worker.parse_args(argv)
    message = str(exc.value)
    assert message.startswith("usage: python -m proxy.worker") and says in message
    assert len(message.splitlines()) == 2


def test_the_code_fingerprint_is_stable_and_names_the_interpreter() -> None:
    first = code_fingerprint()
    assert first == code_fingerprint() and len(first) == 16
    out = subprocess.run([sys.executable, "-c", "from proxy.compiled import code_fingerprint; print(code_fingerprint())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first  # another process of the same code agrees (adoption needs it)
