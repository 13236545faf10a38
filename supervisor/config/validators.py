"""Pure checks of single config values. Each returns None when the value is fine, else a message.

They never raise: the config loader collects their messages into `Problem`s.
"""

from __future__ import annotations

import json
import re

from supervisor.base.address import split_listen
from supervisor.config import cron
from supervisor.model import defaults

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
APP_NAME_RE = re.compile(rf"^{_LABEL}$")  # a DNS label; git/repo.py checks pushed names with it too
_PROCESS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmg]?$", re.IGNORECASE)
_RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$")
_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLUME_OPTIONS = frozenset(
    "ro rw z Z shared slave private rshared rslave rprivate nocopy consistent cached delegated".split()
)
_CRON_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def cron_schedule(schedule: str) -> str | None:
    """A 5-field cron expression or an @ alias, in the one cron grammar (supervisor.config.cron)."""
    if len(schedule) > defaults.MAX_CRON_SCHEDULE:
        return f"is {len(schedule)} characters long, more than the {defaults.MAX_CRON_SCHEDULE} allowed"
    try:
        cron.parse(schedule)
    except ValueError as exc:
        return str(exc)
    return None


def cron_command(command: str) -> str | None:
    """A cron command: its length is capped (it feeds Dokku's cron id and every log line)."""
    if len(command) > defaults.MAX_CRON_COMMAND:
        return f"is {len(command)} characters long, more than the {defaults.MAX_CRON_COMMAND} allowed"
    return None


def file_size(size: int, limit: int = defaults.MAX_REPO_FILE_BYTES) -> str | None:
    """A Procfile or app.json of `size` bytes; larger than `limit` is refused before parsing."""
    if size > limit:
        return f"is larger than {limit // 1024} KiB ({size} bytes or more); refused"
    return None


def host_pattern(host: str) -> str | None:
    """An exact host name, or a leading `*.` wildcard (`*.example.com`)."""
    if len(host) > 253:
        return "must be at most 253 characters"
    if not _HOST_RE.match(host.lower()):
        return f"{_q(host)} is not a host name or a `*.domain` wildcard (letters, digits, dashes, dots; no port, scheme or path)"
    return None


def listen_address(listen: str) -> str | None:
    """host:port, with [::1]:port for IPv6."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        return f"must be host:port (e.g. 127.0.0.1:8080 or 0.0.0.0:80), got {_q(listen)}"
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            return f"bad IPv6 host in {_q(listen)} (write [::1]:8080)"
    elif ":" in host or any(c.isspace() for c in host):
        return f"bad host in {_q(listen)}"
    return port_text(port, listen)


def same_listener(a: str, b: str) -> bool:
    """Whether two valid host:port listeners would bind the same port (a wildcard host
    overlaps every host)."""
    (host_a, port_a), (host_b, port_b) = split_listen(a), split_listen(b)
    if port_a != port_b:
        return False
    wildcards = ("0.0.0.0", "::")
    return host_a == host_b or host_a in wildcards or host_b in wildcards


def port_text(port: str, whole: str) -> str | None:
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return f"port must be 1-65535 in {_q(whole)}"
    return None


def app_name(name: str) -> str | None:
    if not APP_NAME_RE.match(name):
        return "app names must be lowercase letters, digits and dashes, at most 63 characters, starting and ending with a letter or digit"
    return None


def process_name(name: str) -> str | None:
    if not _PROCESS_RE.match(name):
        return "process names must be letters, digits, '_' and '-', at most 63 characters, starting with a letter or digit"
    return None


def env_name(name: str) -> str | None:
    if not _ENV_NAME_RE.match(name):
        return "environment variable names must be letters, digits and '_', not starting with a digit"
    return None


def memory(value: str) -> str | None:
    if not _MEMORY_RE.match(value):
        return f"must be a Docker memory size like \"256m\" or \"1g\" (units b, k, m, g), got {_q(value)}"
    return None


def restart_policy(value: str) -> str | None:
    if not _RESTART_RE.match(value):
        return f"must be no, always, unless-stopped, on-failure or on-failure:N, got {_q(value)}"
    return None


_PLACEMENT_RE = re.compile(
    r"^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[\w.-]+)|engine\.labels\.[\w.-]+)"
    r"\s*(==|!=)\s*\S+$"
)


def placement(value: str) -> str | None:
    """A Swarm placement constraint, as `docker service create --constraint` takes it."""
    if not _PLACEMENT_RE.match(value):
        return ("must be a Swarm constraint like \"node.labels.tier==web\" or \"node.role!=manager\" "
                f"(node.id, node.hostname, node.role, node.platform.os/arch, node.labels.X, engine.labels.X), got {_q(value)}")
    return None


def volume(value: str) -> str | None:
    """Docker -v syntax: SOURCE:/container/path[:OPTIONS], SOURCE an absolute path or a volume name."""
    parts = value.split(":")
    if len(parts) not in (2, 3):
        return f"must be \"/host/path:/container/path[:ro]\" or \"name:/container/path[:ro]\", got {_q(value)}"
    source, target = parts[0], parts[1]
    if not (source.startswith("/") or _VOLUME_NAME_RE.match(source)):
        return f"source {_q(source)} must be an absolute host path or a volume name"
    if not target.startswith("/"):
        return f"container path {_q(target)} must be absolute"
    if len(parts) == 3:
        bad = [o for o in parts[2].split(",") if o not in _VOLUME_OPTIONS]
        if bad:
            return f"unknown volume option(s) {', '.join(_q(b) for b in bad)} (known: ro, rw, z, Z, nocopy, ...)"
    return None


def cron_id(value: str) -> str | None:
    if not _CRON_ID_RE.match(value):
        return "cron ids must be letters, digits, '_', '.' and '-', at most 128 characters"
    return None


def instance(value: str) -> str | None:
    if not _INSTANCE_RE.match(value):
        return "must be letters, digits, '_', '.' and '-' (it becomes a Docker label value)"
    return None


def git_branch(value: str) -> str | None:
    bad = (
        not value
        or value.startswith(("-", "/"))
        or value.endswith(("/", ".lock", "."))
        or ".." in value
        or "//" in value
        or any(c.isspace() or c in "~^:?*[\\" or ord(c) < 32 for c in value)
    )
    return f"{_q(value)} is not a valid git branch name" if bad else None


def timezone(value: str) -> str | None:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except Exception:  # noqa: BLE001 - ZoneInfo raises several types for bad keys
        return f"unknown time zone {_q(value)} (use an IANA name like \"UTC\" or \"Europe/Paris\")"
    return None
