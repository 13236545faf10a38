"""dockyard's TOML config -> `Config`. Every problem is collected and raised at once.

`load_config(path)` reads and parses the file; `parse_config(data, path)` does the rest from an
already-parsed dict (tests, reload). Only `ConfigError` ever leaves either function.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.options import ProxyOptions
from supervisor.base.address import split_listen
from supervisor.config import control, validators
from supervisor.config.apps import parse_app
from supervisor.config.dashboard import check_dashboard_host, dashboard_site
from supervisor.config.fields import Collector, Table, is_int, is_number
from supervisor.config.registries import parse_registries
from supervisor.config.tls import check_tls_listen, server_tls
from supervisor.model import defaults
from supervisor.model.errors import ConfigError
from supervisor.model.kinds import SCHEDULERS
from supervisor.model.spec import AppSpec, Config, ServerSpec

_UNIX_SOCKET_MAX = 107  # bytes of sun_path, less the terminating NUL


def load_config(path: str | Path) -> Config:
    return parse_config(control.read_toml(path), Path(path))


def parse_config(data: dict[str, Any], path: Path) -> Config:
    out = Collector(str(path))
    try:
        config = _parse(data, Path(path), out)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a bug here must still reach the user as a ConfigError
        out.error("", f"internal error while checking the config ({type(e).__name__}: {e}); please report it")
        raise ConfigError(out.problems) from e
    if out.problems:
        raise ConfigError(out.problems)
    return config


def _parse(data: dict[str, Any], path: Path, out: Collector) -> Config:
    if not isinstance(data, dict):
        out.error("", "the config must be a TOML table")
        raise ConfigError(out.problems)
    base = path.parent.absolute()
    top = Table(out, data, "")
    server_table = top.table("server")
    server = _server(server_table, base) if server_table else _server(Table(out, {}, "server"), base)
    proxy_table = top.table("proxy")
    proxy = _proxy(proxy_table) if proxy_table else ProxyOptions()
    registries_table = top.table("registries")
    registries = parse_registries(registries_table, base) if registries_table else {}

    apps: dict[str, AppSpec] = {}
    apps_table = top.table("apps")
    for name in list(apps_table.data) if apps_table else ():
        assert apps_table is not None
        app_table = apps_table.table(name)
        if app_table is None:
            continue
        message = validators.app_name(name)
        if message:
            apps_table.error(name, message)
        app = parse_app(app_table, name, base, server.scheduler)
        if app is not None:
            apps[name] = app
    if apps_table is not None:
        _check_routes(apps, out)
    check_tls_listen(apps, server.tls_listen, out)
    check_dashboard_host(apps, server.dashboard_site, out)
    top.finish()
    return Config(
        path=path.absolute(),
        server=server,
        proxy=proxy,
        apps=MappingProxyType(apps),
        warnings=tuple(out.warnings),
        registries=MappingProxyType(registries),
    )


def _server(t: Table, base: Path) -> ServerSpec:
    listen = t.string("listen", defaults.LISTEN, check=validators.listen_address) or defaults.LISTEN
    state_text = t.string("state_dir", defaults.STATE_DIR)
    state_dir = control.state_dir(base, state_text)
    socket_text = t.string("control_socket")
    socket = control.socket_path(base, state_text, socket_text)
    if len(str(socket).encode()) > _UNIX_SOCKET_MAX:
        key = "control_socket" if socket_text else "state_dir"
        t.out.warn(t.key(key), f"the control socket path {str(socket)!r} is longer than {_UNIX_SOCKET_MAX} bytes; Unix sockets cannot bind it")
    timezone = t.string("timezone", defaults.TIMEZONE, check=validators.timezone) or defaults.TIMEZONE
    instance = t.string("instance", defaults.INSTANCE, check=validators.instance) or defaults.INSTANCE
    metrics_listen = t.string("metrics_listen", check=validators.listen_address) or defaults.METRICS_LISTEN
    if metrics_listen and split_listen(metrics_listen)[0] not in defaults.LOOPBACK_HOSTS:
        t.out.warn(t.key("metrics_listen"), f"{metrics_listen!r} is not a loopback address: anyone who can "
                   "reach it reads every app's metrics (there is no authentication); prefer 127.0.0.1")
    dashboard_listen = (t.string("dashboard_listen", check=validators.listen_address)
                        or defaults.DASHBOARD_LISTEN)
    scheduler = t.choice("scheduler", defaults.SCHEDULER, SCHEDULERS)
    keep_releases = t.integer("keep_releases", defaults.KEEP_RELEASES, minimum=1, maximum=defaults.MAX_KEEP)
    keep_cron_runs = t.integer("keep_cron_runs", defaults.KEEP_CRON_RUNS, minimum=1, maximum=defaults.MAX_KEEP)
    tls = server_tls(t)
    site = dashboard_site(t, base, tls.get("tls_listen"))
    _check_listeners(t, {"listen": listen, "metrics_listen": metrics_listen,
                         "tls_listen": tls.get("tls_listen"), "dashboard_listen": dashboard_listen})
    max_context = t.integer("max_build_context", defaults.MAX_BUILD_CONTEXT, minimum=1 << 20,
                            cap=defaults.MAX_BUILD_CONTEXT_CAP)
    t.finish()
    return ServerSpec(listen=listen, state_dir=state_dir, control_socket=socket, timezone=timezone,
                      instance=instance, metrics_listen=metrics_listen,
                      dashboard_listen=dashboard_listen, dashboard_site=site, scheduler=scheduler,
                      max_build_context=max_context, keep_releases=keep_releases,
                      keep_cron_runs=keep_cron_runs, **tls)


def _check_listeners(t: Table, listeners: dict[str, Any]) -> None:
    """The dashboard gets a listener of its own: not one another key already binds."""
    mine = listeners.pop("dashboard_listen")
    if not mine:
        return
    for key, other in listeners.items():
        if other and validators.same_listener(mine, other):
            t.error("dashboard_listen", f"{mine!r} is also server.{key}; the dashboard needs a port of its own")


def _proxy(t: Table) -> ProxyOptions:
    """Each option's kind comes from its ProxyOptions field type, so a new option needs no edit here."""
    values: dict[str, Any] = {}
    for name, field in ProxyOptions.__dataclass_fields__.items():
        if not t.has(name):
            continue
        value = t.data[name]
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        if field.default == "auto":  # `int | str` (an object once compiled): "auto" or a count
            ok, expected = value == "auto" or is_int(value), '"auto" or an integer'
        elif kind == "bool":
            ok, expected = isinstance(value, bool), "true or false"
        elif kind == "int":
            ok, expected = is_int(value), "an integer number of bytes" if name.endswith("_size") else "an integer"
        elif kind.startswith("tuple"):  # tuple[str, ...] (a class once compiled by mypyc)
            ok, expected = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of strings"
            value = tuple(value) if ok else value
        else:
            ok, expected = is_number(value), "a number of seconds"
            value = float(value) if ok else value
        if ok:
            values[name] = value
        else:
            t.bad(name, expected)
    t.finish()
    options = ProxyOptions(**values)
    for key, message in options.validate():
        t.error(key, message)
    for key, message in _proxy_ranges(options):
        t.error(key, message)
    return options


def _proxy_ranges(options: ProxyOptions) -> list[tuple[str, str]]:
    """The upper bounds (and max_header_size's lower one) that ProxyOptions.validate leaves open."""
    problems = []
    size = options.max_header_size
    if 0 <= size < defaults.MIN_HEADER_SIZE or size > defaults.MAX_HEADER_SIZE:
        problems.append(("max_header_size", f"must be {defaults.MIN_HEADER_SIZE}-{defaults.MAX_HEADER_SIZE} bytes "
                                            f"(a request line and its headers must fit), got {size}"))
    for name in ProxyOptions.__dataclass_fields__:
        value = getattr(options, name)
        if name.endswith("_timeout") and value > defaults.MAX_SECONDS:
            problems.append((name, f"must be at most {defaults.MAX_SECONDS:g} seconds, got {value:g}"))
    return problems


def _check_routes(apps: dict[str, AppSpec], out: Collector) -> None:
    """Two apps may share a host only under different path prefixes."""
    owner: dict[tuple[str, str], str] = {}
    for name, app in apps.items():
        for host in app.hosts:
            route = (host, app.path_prefix)
            if route in owner:
                out.error(
                    f"apps.{name}.hosts",
                    f"host {host!r} with path_prefix {app.path_prefix!r} is already routed to app {owner[route]!r}",
                )
            else:
                owner[route] = name
