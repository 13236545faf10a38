"""One `[apps.NAME]` table -> `AppSpec`, merged with the app's Dokku app.json when it names one.

The TOML is read into an AppSpec that records what it set explicitly (`scales_given`,
`cron_given`); the app.json goes under it through the one merge (supervisor.config.merge),
whose rules say what wins: the TOML, including an explicit `scale = 1` or `cron = []`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

from supervisor.config import validators
from supervisor.config.appjson import AppJson, cron_id, load_app_json
from supervisor.config.dotenv import DotenvError, read_dotenv
from supervisor.config.fields import Table, is_number, join, show
from supervisor.config.healthcheck import parse_healthchecks
from supervisor.config.merge import merge
from supervisor.config.policies import app_policy
from supervisor.config.tls import app_tls
from supervisor.model import defaults
from supervisor.model.errors import ConfigError
from supervisor.model.kinds import (
    BALANCES,
    CONCURRENCY_POLICIES,
    NETWORKS,
    PULL_POLICIES,
    SCHEDULERS,
    Scheduler,
)
from supervisor.model.spec import AppSpec, CanarySpec, CronSpec, LimitsSpec, ProcessSpec


def parse_app(t: Table, name: str, base: Path, scheduler: Scheduler = defaults.SCHEDULER) -> AppSpec | None:
    """`scheduler`: the [server] default, for an app without its own."""
    before = len(t.out.problems)
    image = t.string("image")
    build = t.string("build")
    if (image is None) == (build is None) and not (t.has("image") or t.has("build")):
        t.out.error(t.prefix, "needs exactly one of image or build, got neither")
    elif image is not None and build is not None:
        t.out.error(t.prefix, "needs exactly one of image or build, got both")
    if build is not None and build != "git":
        build = os.path.normpath(base / build)

    hosts = _hosts(t)
    path_prefix = t.string("path_prefix", defaults.PATH_PREFIX) or defaults.PATH_PREFIX
    if not path_prefix.startswith("/"):
        t.error("path_prefix", f"must start with \"/\", got {show(path_prefix)}")
    app_json_name = t.string("app_json")
    app_json_path = str(base / app_json_name) if app_json_name else ""
    app_json = _load_app_json(t, base / app_json_name, name) if app_json_name else AppJson()
    processes, scales_given = _processes(t)
    checks_table = t.table("healthchecks")
    checks = parse_healthchecks(checks_table, strict=True) if checks_table else {}
    cron = _cron(t, name) if t.has("cron") else []
    env_file, file_env = _env_file(t, base)
    error_pages = _error_pages(t, base)

    spec = AppSpec(
        name=name,
        image=image,
        build=build,
        build_args=MappingProxyType(_string_table(t, "build_args")),
        hosts=hosts,
        path_prefix=path_prefix,
        port=t.integer("port", defaults.PORT, minimum=1, maximum=65535),
        retire_after=t.number("retire_after", defaults.RETIRE_AFTER),
        stop_timeout=t.number("stop_timeout", defaults.STOP_TIMEOUT),
        drain_timeout=t.number("drain_timeout", defaults.DRAIN_TIMEOUT),
        default_checks_wait=t.number("default_checks_wait", defaults.DEFAULT_CHECKS_WAIT),
        deploy_timeout=t.number("deploy_timeout", defaults.DEPLOY_TIMEOUT, positive=True),
        build_timeout=t.number("build_timeout", defaults.BUILD_TIMEOUT, positive=True),
        network=t.choice("network", defaults.NETWORK, NETWORKS),
        balance=t.choice("balance", defaults.BALANCE, BALANCES),
        restart=t.string("restart", defaults.RESTART_POLICY, check=validators.restart_policy) or defaults.RESTART_POLICY,
        scheduler=t.choice("scheduler", scheduler, SCHEDULERS),
        placement=_placement(t),
        env=MappingProxyType(_env(t)),
        env_file=env_file,
        pull=t.choice("pull", defaults.PULL, PULL_POLICIES),
        error_pages=MappingProxyType(error_pages),
        volumes=_volumes(t),
        app_json=app_json_name,
        processes=MappingProxyType(processes),
        scales_given=tuple(sorted(scales_given)),
        healthchecks=MappingProxyType(checks),
        cron=tuple(cron),
        cron_given=t.has("cron"),
        limits=_limits(t),
        predeploy=t.string("predeploy"),
        postdeploy=t.string("postdeploy"),
        deploy_branch=t.string("deploy_branch", check=validators.git_branch),
        canary=_canary(t),
        policy=app_policy(t, base, path_prefix),
        keep_releases=t.integer("keep_releases", 0, minimum=1, maximum=defaults.MAX_KEEP) or None,
        **app_tls(t, base, hosts),
    )
    if spec.scheduler == "swarm" and spec.network == "host":
        t.error("network", "network = \"host\" is not supported with scheduler = \"swarm\" "
                           "(tasks publish a host-mode port instead, docs/swarm.md)")
    merged = merge(spec, app_json, app_json=app_json_path, provided=frozenset(file_env))
    t.out.warnings.extend(merged.warnings)
    t.out.problems.extend(merged.errors)
    for process in checks:
        if process not in merged.spec.processes:
            t.out.error(join(t.key("healthchecks"), process), f"no process named {process!r} (processes: {', '.join(merged.spec.processes)})")
    t.finish()
    return merged.spec if len(t.out.problems) == before else None


def _load_app_json(t: Table, path: Path, app: str) -> AppJson:
    try:
        found = load_app_json(path, app=app)
    except ConfigError as e:
        t.out.problems.extend(e.problems)
        t.error("app_json", f"{str(path)!r} could not be loaded (see above)")
        return AppJson()
    t.out.warnings.extend(found.warnings)
    return found


def _placement(t: Table) -> tuple[str, ...]:
    found = t.strings("placement") or ()
    for i, constraint in enumerate(found):
        message = validators.placement(constraint)
        if message:
            t.out.error(f"{t.key('placement')}[{i}]", message)
    if found and t.data.get("scheduler") == "docker":
        t.out.warn(t.key("placement"), "placement applies to scheduler = \"swarm\" only; ignored")
    return found


def _hosts(t: Table) -> tuple[str, ...]:
    hosts = t.strings("hosts") or ()
    seen: list[str] = []
    for i, host in enumerate(hosts):
        message = validators.host_pattern(host)
        if message:
            t.out.error(f"{t.key('hosts')}[{i}]", message)
        elif host.lower() in seen:
            t.out.error(f"{t.key('hosts')}[{i}]", f"duplicate host {host!r}")
        else:
            seen.append(host.lower())
    return tuple(seen)


def _processes(t: Table) -> tuple[dict[str, ProcessSpec], set[str]]:
    table = t.table("processes")
    if table is None:
        return {defaults.WEB_PROCESS: ProcessSpec(defaults.WEB_PROCESS)}, set()
    processes: dict[str, ProcessSpec] = {}
    explicit: set[str] = set()
    for name in list(table.data):
        p = table.table(name)
        if p is None:
            continue
        message = validators.process_name(name)
        if message:
            table.error(name, message)
        command: str | tuple[str, ...] | None = None
        raw = p.raw("command")
        if isinstance(raw, str) and raw.strip():
            command = raw
        elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw) and raw[0]:
            command = tuple(raw)
        elif raw is not None:
            p.bad("command", "a non-empty string (run by the image's shell) or a non-empty array of strings")
        if p.has("scale"):
            explicit.add(name)
        processes[name] = ProcessSpec(
            name, command, p.integer("scale", defaults.SCALE, minimum=0, cap=defaults.MAX_SCALE)
        )
        p.finish()
    return processes, explicit


def _cron(t: Table, app: str) -> list[CronSpec]:
    raw = t.raw("cron")
    if not isinstance(raw, list):
        t.bad("cron", "an array of tables ([[apps.NAME.cron]])")
        return []
    result: list[CronSpec] = []
    ids: dict[str, int] = {}
    for i, item in enumerate(raw):
        key = f"{t.key('cron')}[{i}]"
        if not isinstance(item, dict):
            t.out.error(key, f"must be a table, got {show(item)}")
            continue
        label = item.get("id")
        if isinstance(label, str) and label:
            key += f" (id {json.dumps(label)})"
        c = Table(t.out, item, key)
        before = len(t.out.problems)
        task_id = c.string("id", check=validators.cron_id)
        command = c.string("command", check=validators.cron_command)
        schedule = c.string("schedule", check=validators.cron_schedule)
        for required in ("command", "schedule"):
            if required not in item:
                c.error(required, "is required")
        policy = c.choice("concurrency_policy", defaults.CRON_CONCURRENCY, CONCURRENCY_POLICIES)
        timeout = c.optional_number("timeout", positive=True)
        max_concurrent = c.integer("max_concurrent", defaults.CRON_MAX_CONCURRENT,
                                   maximum=defaults.MAX_CRON_CONCURRENT)
        c.finish()
        if len(t.out.problems) != before or command is None or schedule is None:
            continue
        task_id = task_id or cron_id(app, command, schedule)
        if task_id in ids:
            t.out.error(f"{key}.id", f"duplicate cron id {task_id!r} (also {t.key('cron')}[{ids[task_id]}])")
            continue
        ids[task_id] = i
        result.append(CronSpec(task_id, command, schedule, policy, timeout, "config", max_concurrent))
    return result


def _env(t: Table) -> dict[str, str]:
    table = t.table("env")
    env: dict[str, str] = {}
    for name in list(table.data) if table else ():
        assert table is not None
        value: Any = table.raw(name)
        message = validators.env_name(name)
        if message:
            table.error(name, message)
        elif isinstance(value, str):
            env[name] = value
        elif is_number(value):
            env[name] = str(value)
        else:
            table.bad(name, "a string or a number")
    return env


def _env_file(t: Table, base: Path) -> tuple[str | None, dict[str, str]]:
    """`env_file`: its absolute path and variables. Refused when other users can read it, as
    when it cannot be read or parsed; it is read again at each deploy (docs/env.md)."""
    name = t.string("env_file")
    if name is None:
        return None, {}
    path = os.path.normpath(base / name)
    try:
        return path, read_dotenv(Path(path))
    except DotenvError as exc:
        t.error("env_file", str(exc))
        return path, {}


ERROR_PAGES = (404, 502, 503, 504)
ERROR_PAGE_MAX = 64 * 1024


def _error_pages(t: Table, base: Path) -> dict[int, str]:
    """`error_pages = "DIR"`: the app's own 404/502/503/504.html for the proxy's answers, read
    (and checked) now: the proxy serves them from memory."""
    name = t.string("error_pages")
    if name is None:
        return {}
    folder = Path(os.path.normpath(base / name))
    before = len(t.out.problems)
    if not folder.is_dir():
        t.error("error_pages", f"{str(folder)!r} is not a directory")
        return {}
    pages: dict[int, str] = {}
    for status in ERROR_PAGES:
        path = folder / f"{status}.html"
        if not path.exists():
            continue
        try:
            data = path.read_bytes()
            if len(data) > ERROR_PAGE_MAX:
                t.error("error_pages", f"{str(path)!r} is larger than {ERROR_PAGE_MAX // 1024} KiB")
                continue
            pages[status] = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            t.error("error_pages", f"cannot read {str(path)!r}: {exc}")
    if not pages and len(t.out.problems) == before:
        names = ", ".join(f"{s}.html" for s in ERROR_PAGES)
        t.error("error_pages", f"{str(folder)!r} has none of {names}")
    return pages


def _string_table(t: Table, name: str) -> dict[str, str]:
    table = t.table(name)
    result: dict[str, str] = {}
    for key in list(table.data) if table else ():
        assert table is not None
        value = table.string(key, empty_ok=True)
        if value is not None:
            result[key] = value
    return result


def _volumes(t: Table) -> tuple[str, ...]:
    volumes = t.strings("volumes") or ()
    for i, volume in enumerate(volumes):
        message = validators.volume(volume)
        if message:
            t.out.error(f"{t.key('volumes')}[{i}]", message)
    return volumes


def _canary(t: Table) -> CanarySpec | None:
    """`canary = { percent = 10, for = 300, max_error_rate = 0.02, max_latency_ratio = 1.5 }`."""
    table = t.table("canary")
    if table is None:
        return None
    spec = CanarySpec(
        percent=table.number("percent", defaults.CANARY_PERCENT, positive=True),
        window=table.number("for", defaults.CANARY_FOR, positive=True),
        max_error_rate=table.number("max_error_rate", defaults.CANARY_MAX_ERROR_RATE),
        max_latency_ratio=table.number("max_latency_ratio", defaults.CANARY_MAX_LATENCY_RATIO, positive=True),
        min_requests=table.integer("min_requests", defaults.CANARY_MIN_REQUESTS),
    )
    for key, message in spec.validate():
        table.error(key, message)
    table.finish()
    return spec


def _limits(t: Table) -> LimitsSpec:
    table = t.table("limits")
    if table is None:
        return LimitsSpec()
    memory = table.string("memory", check=validators.memory)
    cpus = None
    if table.has("cpus"):
        value = table.data["cpus"]
        if is_number(value) and 0 < value <= defaults.MAX_CPUS:
            cpus = float(value)
        elif is_number(value) and value > defaults.MAX_CPUS:
            table.error("cpus", f"must be at most {defaults.MAX_CPUS:g}, got {value:g}")
        else:
            table.bad("cpus", "a positive number of CPUs (e.g. 0.5)")
    table.finish()
    return LimitsSpec(memory=memory, cpus=cpus)
