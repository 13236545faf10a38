"""How the CLI prints data: aligned tables and indented JSON, for every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def cell(value: Any) -> str:
    """One table cell: `-` for nothing, yes/no, a list joined by commas."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    indent: str = "",
    padded_header: bool = False,
) -> str:
    """`columns` of `rows` under an upper-case header, each column as wide as its widest cell.

    Lines carry no trailing blanks, except the header with `padded_header` (what `dockyard
    cron` has always printed; kept so its output stays the same byte for byte).
    """
    cells = [[c.upper() for c in columns]] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    body = [line.rstrip() for line in lines[1:]]
    header = lines[0] if padded_header else lines[0].rstrip()
    return "\n".join(indent + line for line in [header, *body])


def json_text(data: Any) -> str:
    """Indented JSON, as orjson's OPT_INDENT_2 printed it (the standard library's json: orjson's
    import was ~14 ms of every command's CPU)."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
