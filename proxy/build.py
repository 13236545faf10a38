"""Build the compiled proxy in place: `python -m proxy.build [build|ensure|clean|status]` (run by make).

See proxy/compiled.py for when the build is used, and docs/proxy.md for what it gains.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from .compiled import (
    GROUP,
    ROOT,
    built,
    describe,
    disabled,
    extensions,
    modules,
    runtime_libraries,
    use_extensions,
)


def clean() -> None:
    for name in modules():
        for ext in extensions(name):
            os.unlink(ext)
    for lib in runtime_libraries():
        os.unlink(lib)


def build() -> int:
    """Compile in place with mypyc. A machine without a compiler keeps the pure proxy (exit 0)."""
    clean()
    sources = [f"proxy/{name}.py" for name in modules()]
    script = (
        "from setuptools import setup\nfrom mypyc.build import mypycify\n"
        f"setup(name='dockyard-proxy', ext_modules=mypycify({sources!r}, opt_level='3', group_name={GROUP!r}),"
        " script_args=['build_ext', '--inplace', '--build-temp', 'build/mypyc'])\n"
    )
    env = dict(os.environ, MYPYC_OPT_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not built():
        clean()
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        print(f"proxy.build: build failed, the proxy runs as pure Python (slower):\n{tail}", file=sys.stderr)
        return 0
    for name in modules():  # setuptools copies with the old build's times when nothing changed
        for ext in extensions(name):
            os.utime(ext)
    print(f"proxy.build: built {len(sources)} modules with mypyc", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "status"
    if command == "build":
        return build()
    if command == "ensure":  # build unless a current build exists or extensions are switched off
        if disabled() or use_extensions()[0]:
            print(f"proxy.build: {describe()}", file=sys.stderr)
            return 0
        return build()
    if command == "clean":
        clean()
        return 0
    if command == "status":
        print(describe())
        return 0
    print("usage: python -m proxy.build [build|ensure|clean|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
