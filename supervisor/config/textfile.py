"""Reading an app.json or a Procfile from disk: at most MAX_REPO_FILE_BYTES, UTF-8 (a BOM
allowed), every failure a ConfigError naming the file. One reader for both, so they refuse
the same files with the same words."""

from __future__ import annotations

from pathlib import Path

from supervisor.config import validators
from supervisor.model import defaults
from supervisor.model.errors import ConfigError, Problem


def read_text(path: str | Path, what: str) -> str:
    """The text of `path` (`what`: "app.json", "Procfile", for the message)."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(defaults.MAX_REPO_FILE_BYTES + 1)
        too_big = validators.file_size(len(data))
        if too_big:
            raise ConfigError([Problem(name, "", too_big)])
        return data.decode("utf-8-sig")
    except OSError as e:
        raise ConfigError([Problem(name, "", f"cannot read {what}: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, "", f"not UTF-8 text: {e.reason} at byte {e.start}")]) from e
