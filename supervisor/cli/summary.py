"""The human summary `dockyard validate` prints for a valid config. Pure: Config in, text out.

No trailing newline; warnings are only counted (the CLI prints them on stderr)."""

from __future__ import annotations

import shlex

from supervisor.model.spec import AppSpec, Config, CronSpec, HealthCheckSpec, ProcessSpec


def summarize(config: Config) -> str:
    s = config.server
    count = len(config.apps)
    lines = [
        f"{config.path}: OK, {count} app{'' if count == 1 else 's'}",
        f"server: listen {s.listen}, state_dir {s.state_dir}, control_socket {s.control_socket}, "
        f"timezone {s.timezone}, instance {s.instance}",
    ]
    for app in config.apps.values():
        lines.extend(_app(app))
    if config.warnings:  # the CLI prints the warnings themselves, on stderr
        lines.append(f"\n{len(config.warnings)} warning(s)")
    return "\n".join(lines)


def _app(app: AppSpec) -> list[str]:
    source = f"image {app.image}" if app.image else f"build {app.build}"
    routes = ", ".join(f"{h}{'' if app.path_prefix == '/' else app.path_prefix}" for h in app.hosts)
    lines = [
        "",
        f"app {app.name}: {source}, port {app.port}, network {app.network}",
        f"  routes: {routes or '(none: not reachable through the proxy)'}",
    ]
    if app.scheduler == "swarm":
        lines.append(f"  scheduler: swarm (a service per release x process type)"
                     f"{', placement ' + ', '.join(app.placement) if app.placement else ''}")
    if app.app_json:
        lines.append(f"  app.json: {app.app_json}")
    lines.append("  processes:")
    lines.extend(f"    {_process(p)}" for p in app.processes.values())
    lines.append("  checks:")
    for process in app.processes:
        checks = app.healthchecks.get(process, ())
        if not checks:
            lines.append(f"    {process}: none (wait {app.default_checks_wait:g}s, then must still be running)")
        for check in checks:
            lines.append(f"    {process}: {_check(check, app.port)}")
    if app.cron:
        lines.append("  cron:")
        lines.extend(f"    {_cron(c)}" for c in app.cron)
    for label, script in (("predeploy", app.predeploy), ("postdeploy", app.postdeploy)):
        if script:
            lines.append(f"  {label}: {script}")
    limits = [f"memory {app.limits.memory}" if app.limits.memory else "", f"cpus {app.limits.cpus:g}" if app.limits.cpus else ""]
    if any(limits):
        lines.append(f"  limits: {', '.join(x for x in limits if x)}")
    return lines


def _process(p: ProcessSpec) -> str:
    if p.command is None:
        command = "(image CMD)"
    elif isinstance(p.command, str):
        command = p.command
    else:
        command = shlex.join(p.command)
    return f"{p.name} x{p.scale}: {command}"


def _check(c: HealthCheckSpec, app_port: int) -> str:
    port = c.port or app_port
    if c.command:
        what = f"command {shlex.join(c.command)}"
    elif c.path is not None:
        what = f"GET {c.scheme}://<container>:{port}{c.path}"
        if c.content:
            what += f" expecting {c.content!r}"
    elif c.listening:
        what = f"listening on port {port}"
    else:
        what = f"uptime {c.uptime or 0:g}s"
    name = f" {c.name!r}" if c.name else ""
    timing = f"attempts {c.attempts}, timeout {c.timeout:g}s, wait {c.wait:g}s"
    if c.initial_delay:
        timing += f", initialDelay {c.initial_delay:g}s"
    return f"{c.type}{name} {what} ({timing}{', warn only' if c.warn else ''})"


def _cron(c: CronSpec) -> str:
    extra = f", timeout {c.timeout:g}s" if c.timeout else ""
    return f"{c.id}: {c.schedule!r} {c.command} ({c.concurrency_policy}{extra}; from {c.source})"
