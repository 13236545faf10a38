"""Fail when the import graph of dockyard's packages has a cycle, type-only imports included.

import-linter's layers contract keeps the packages in order; this keeps each package's own
modules acyclic too (a cycle inside a layer is as hard to change as one across layers).
Run by `make lint`.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("supervisor", "scheduler", "proxy")


def cycles() -> list[list[str]]:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    # Tarjan's strongly connected components; a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            # a package's __init__ importing its own modules is not a cycle worth reporting
            # unless a module imports the package back; grimp reports both directions, so keep all
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def main() -> int:
    found = cycles()
    for component in found:
        print("import cycle: " + " <-> ".join(component), file=sys.stderr)
    if found:
        return 1
    print(f"no import cycles in {', '.join(PACKAGES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
