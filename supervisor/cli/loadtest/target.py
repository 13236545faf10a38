"""Where `dockyard loadtest` sends its load: the config's own proxy listener, nothing else.

The address is the one `[server] listen` names; a wildcard (0.0.0.0, ::) becomes 127.0.0.1.
Any other address must belong to this machine (it is loopback, or a socket can bind it), so
the load never leaves the host. The Host header is the app's first host (a `*.domain`
wildcard becomes `loadtest.domain`) or `--host`, which must route to the app. Paths and
header lines are checked here, so the generator writes them as they are.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Sequence
from pathlib import Path

from supervisor.base.address import split_listen
from supervisor.cli.loadtest.errors import LoadTestError
from supervisor.cli.loadtest.generator import Target
from supervisor.model.spec import AppSpec, Config

WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "*")
LOOPBACK = "127.0.0.1"
WILDCARD_HOST_LABEL = "loadtest"  # "*.example.com" is loaded as "loadtest.example.com"
# Framing and hop-by-hop headers are the generator's; Host has its own option.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                              "upgrade", "expect", "te", "keep-alive", "proxy-connection"})


def listener(listen: str) -> tuple[str, int]:
    """The address and port to connect to for `[server] listen`; LoadTestError if not local."""
    host, port = split_listen(listen)
    if host in WILDCARD_ADDRESSES or host == "localhost":
        return LOOPBACK, port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            resolved = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
        except OSError as exc:
            raise LoadTestError(f"cannot resolve the listen address {host!r}: {exc}") from exc
        address = ipaddress.ip_address(resolved)
    if address.is_unspecified:
        return LOOPBACK, port
    if not address.is_loopback and not _is_local(str(address)):
        raise LoadTestError(
            f"the proxy listens on {listen}, which is not an address of this machine: "
            "loadtest only sends load to the local proxy listener"
        )
    return str(address), port


def _is_local(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def host_matches(host: str, pattern: str) -> bool:
    host, pattern = host.lower(), pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def host_header(app: AppSpec, given: str | None) -> str:
    if not app.hosts:
        raise LoadTestError(f"app {app.name!r} has no hosts: the proxy routes nothing to it")
    if given is None:
        first = app.hosts[0]
        return f"{WILDCARD_HOST_LABEL}{first[1:]}" if first.startswith("*.") else first
    if not any(host_matches(given, pattern) for pattern in app.hosts):
        raise LoadTestError(f"--host {given} does not route to app {app.name!r} "
                            f"(its hosts: {', '.join(app.hosts)})")
    return given


def check_path(path: str) -> str:
    if not path.startswith("/") or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        raise LoadTestError(f"bad path {path!r}: it must start with / and hold no spaces or "
                            "control characters (percent-encode them)")
    return path


def read_paths_file(path: Path) -> list[str]:
    """One path per line; blank lines and lines starting with # are skipped; repeats weigh."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise LoadTestError(f"cannot read --paths-file {path}: {exc.strerror or exc}") from exc
    paths = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not paths:
        raise LoadTestError(f"--paths-file {path} has no paths")
    return [check_path(p) for p in paths]


def mix(paths: Sequence[str]) -> tuple[str, ...]:
    """The paths in a fixed shuffled order, so a weighted list is not sent in runs."""
    mixed = list(paths)
    random.Random(0).shuffle(mixed)
    return tuple(mixed)


def parse_header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c in line for c in "\r\n\0") or any(
        c.isspace() or c in '()<>@,;:\\"/[]?={}' for c in name
    ):
        raise LoadTestError(f"bad --header {line!r}: write 'Name: value'")
    if name.lower() in RESERVED_HEADERS:
        raise LoadTestError(f"--header {name} is not allowed (Host: use --host; framing and "
                            "connection headers are the generator's)")
    return name, value


def resolve(
    config: Config,
    app_name: str,
    *,
    host: str | None = None,
    paths: Sequence[str] = (),
    paths_file: Path | None = None,
    headers: Sequence[str] = (),
) -> Target:
    """The Target of a loadtest of `app_name`, from the config and the options."""
    app = config.apps.get(app_name)
    if app is None:
        known = ", ".join(sorted(config.apps)) or "none"
        raise LoadTestError(f"no app {app_name!r} in {config.path} (apps: {known})")
    address, port = listener(config.server.listen)
    chosen = [check_path(p) for p in paths]
    if paths_file is not None:
        chosen += read_paths_file(paths_file)
    if not chosen:
        chosen = [app.path_prefix or "/"]
    return Target(port, host_header(app, host), chosen[0], address,
                  paths=mix(chosen), headers=tuple(parse_header(h) for h in headers))
