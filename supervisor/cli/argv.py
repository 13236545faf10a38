"""The command word of a `dockyard` command line, found before any parser is built: the
entry point lowers the command's priority by it (cli/entry.py), and the parser imports only
that command's module (cli/main.py)."""

from __future__ import annotations

from collections.abc import Sequence

VALUED = frozenset({"-c", "--config"})  # the top-level options that take a value


def command_of(words: Sequence[str]) -> str | None:
    """The first word that is not an option or the value of -c/--config."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None
