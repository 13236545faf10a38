"""The proxy's optional compiled form: its modules built with mypyc, pure Python as the fallback.

Like aiohttp's and uvloop's C speedups, this is an accelerator, never a requirement. The same
typed sources compile to C extension modules beside them (`python -m proxy.build`,
run by `make`); CPython imports an extension in preference to its .py. The pure sources are used
instead when:

- nothing was built (no C compiler or Python headers: the build says so and carries on);
- `DOCKYARD_NO_EXTENSIONS=1` is set (the test suite runs the proxy tests once this way too);
- any source is newer than its extension (an edit or a checkout since the last build), so a
  stale build never runs in place of the code you read.

See docs/proxy.md ("Compiled proxy") for what it gains, measured by `python -m bench.throughput`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import zlib
from collections.abc import Sequence
from types import ModuleType

# Paths as strings (os.path): pathlib, with fnmatch and urllib.parse, is ~0.6 MB in every proxy
# worker, which loads this module first and has no other use for it (issue #19's memory goal).
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
ROOT = os.path.dirname(PACKAGE_DIR)
GROUP = "proxy.native"  # mypyc puts the shared runtime library in the package: proxy/native__mypyc.*.so
# Not compiled: the package's __init__, this module, build.py and errors.py (exceptions subclassing
# builtins must stay Python classes under mypyc).
PURE = frozenset({"__init__", "build", "compiled", "errors", "channel", "worker", "route_message"})
ENV_DISABLE = "DOCKYARD_NO_EXTENSIONS"


def listing() -> list[str]:
    """The package directory's file names, sorted; none inside a zip archive (dockyard.pyz),
    where nothing is compiled."""
    try:
        return sorted(os.listdir(PACKAGE_DIR))
    except OSError:
        return []


def modules() -> list[str]:
    """Names of the modules that compile (sorted), e.g. `exchange`, `server`."""
    stems = (name[:-3] for name in listing() if name.endswith(".py"))
    return sorted(stem for stem in stems if stem not in PURE)


def extensions(name: str) -> list[str]:
    paths = (os.path.join(PACKAGE_DIR, name + s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    return [path for path in paths if os.path.exists(path)]


def stale() -> list[str]:
    """Modules whose source is newer than their extension (only those that have one)."""
    out = []
    for name in modules():
        source = os.path.join(PACKAGE_DIR, f"{name}.py")
        for ext in extensions(name):
            if os.stat(source).st_mtime > os.stat(ext).st_mtime:
                out.append(name)
    return out


def runtime_libraries() -> list[str]:
    """The shared runtime library mypyc builds for the group (one file once built)."""
    prefix = f"{GROUP.rpartition('.')[2]}__mypyc."
    return [os.path.join(PACKAGE_DIR, n) for n in listing() if n.startswith(prefix)]


def built() -> bool:
    """Every module has an extension, and their shared runtime library is there."""
    names = modules()
    return bool(names) and all(extensions(n) for n in names) and bool(runtime_libraries())


def disabled() -> bool:
    """`DOCKYARD_NO_EXTENSIONS` is set (to anything but empty or 0)."""
    return os.environ.get(ENV_DISABLE, "") not in ("", "0")


def use_extensions() -> tuple[bool, str]:
    """Whether the compiled modules will be imported, and why not when they won't."""
    if disabled():
        return False, f"{ENV_DISABLE} is set"
    if not built():
        return False, "not built (python -m proxy.build)"
    old = stale()
    if old:
        return False, f"sources changed since the build: {', '.join(old)} (rebuild with make)"
    return True, ""


def is_compiled() -> bool:
    """True when the running proxy is the compiled one (not a source, nor the bytecode that
    `make dist` puts beside each source in the archive)."""
    mod = sys.modules.get(f"{__package__}.exchange")
    return mod is not None and not (getattr(mod, "__file__", "") or "").endswith((".py", ".pyc"))


class _SourceFirst:
    """Finds the proxy's modules as .py sources even where an extension sits beside them (a meta
    path finder by its find_spec; not importlib.abc's subclass, whose import costs every proxy
    worker ~2 MB: importlib.resources, tempfile, shutil, bz2, lzma)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        source = os.path.join(PACKAGE_DIR, f"{fullname.rpartition('.')[2]}.py")
        return importlib.util.spec_from_file_location(fullname, source)


def select() -> None:
    """Called by the package's __init__ before anything else: pure sources unless compiled is usable."""
    ok, _ = use_extensions()
    if not ok:
        sys.meta_path.insert(0, _SourceFirst(frozenset(f"{__package__}.{n}" for n in modules())))


def describe() -> str:
    ok, why = use_extensions()
    return "compiled (mypyc)" if ok else f"pure Python ({why})"


def code_fingerprint() -> str:
    """What a worker runs: the interpreter, and the proxy package's files (name, size, mtime).
    A supervisor adopts a running worker only when its own fingerprint is the same (an upgraded
    dockyard starts workers of its own version instead). A change detector, not a security
    check: two zlib checksums, so a worker never loads hashlib for it."""
    files = [(n, os.stat(os.path.join(PACKAGE_DIR, n))) for n in listing() if n.endswith((".py", ".so"))]
    archive = PACKAGE_DIR
    while not files and archive != os.path.dirname(archive):  # in dockyard.pyz: the archive's file
        archive = os.path.dirname(archive)
        if os.path.isfile(archive):
            files = [(archive, os.stat(archive))]
    text = sys.executable + "".join(f"{name}:{st.st_size}:{st.st_mtime_ns};" for name, st in files)
    data = text.encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
