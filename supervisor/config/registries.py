"""`[registries."HOST"]`: credentials for pulling images, and which registry an image is from.

    [registries."registry.example.com"]
    username = "deploy"
    password_file = "secrets/registry.password"   # mode 0600, relative to the config file

Without an entry the engine client's own login store is used (`docker login`:
~/.docker/config.json, with its credential helpers). The password is read at each pull, never
kept in memory longer nor logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.config.dotenv import private_problem
from supervisor.config.fields import Table
from supervisor.model.errors import DockyardError
from supervisor.model.spec import RegistrySpec

DOCKER_HUB = "docker.io"


def registry_of(image: str) -> str:
    """The registry host of an image reference, as Docker reads it: the first path component
    when it has a '.' or a ':' or is `localhost`, else Docker Hub."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def parse_registries(t: Table, base: Path) -> dict[str, RegistrySpec]:
    found: dict[str, RegistrySpec] = {}
    for host in list(t.data):
        entry = t.table(host)
        if entry is None:
            continue
        if not host or "/" in host or any(c.isspace() for c in host):
            t.error(host, "must be a registry host name, like \"registry.example.com\" or \"127.0.0.1:5000\"")
        username = entry.string("username")
        password_file = entry.string("password_file")
        for required, value in (("username", username), ("password_file", password_file)):
            if value is None and not entry.has(required):
                entry.error(required, "is required")
        path = os.path.normpath(base / password_file) if password_file else ""
        if path:
            problem = private_problem(Path(path))
            if problem:
                entry.error("password_file", problem.replace("env file", "password file"))
        entry.finish()
        if username and path:
            found[host.lower()] = RegistrySpec(host.lower(), username, path)
    return found


def credentials(spec: RegistrySpec) -> dict[str, str]:
    """The auth the engine's pull takes; DockyardError when the password file cannot be read."""
    problem = private_problem(Path(spec.password_file))
    if problem:
        raise DockyardError(problem.replace("env file", "password file"))
    try:
        password = Path(spec.password_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DockyardError(f"cannot read password file {spec.password_file!r}: {exc}") from exc
    return {"username": spec.username, "password": password, "serveraddress": spec.host}
