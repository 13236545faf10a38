"""The one merge of an app's definition: the config on top, a Dokku app.json and Procfile under it.

Both ways an app.json reaches an app go through `merge`: the one the TOML's `app_json` key
names (config/apps.py, when the config is loaded) and a pushed or uploaded repository's
app.json and Procfile (config/repo.py, at each build and whenever a release's files are
merged back in). In the second, the upper layer is the config's AppSpec, which already holds
the TOML's own app.json: "the config" is the TOML and the app.json it names.

The rules. The upper layer (the TOML, then the config) wins:
- process types: if a process of the upper layer has a `command`, the upper layer defines the
  process types and a Procfile is ignored with a warning. Otherwise the Procfile (when there
  is one) defines the types and their commands; the upper layer's scales stay, and a type
  only the upper layer names is kept.
- scale: `formation.TYPE.quantity` sets TYPE's scale unless the upper layer gave one: an
  explicit TOML `scale`, even 1, or the formation of the TOML's own app.json
  (`AppSpec.scales_given`). A formation entry for a type the app does not have adds that type
  when no process has a command (they all run the image's CMD); otherwise it is ignored with
  a warning.
- healthchecks: per process type, the upper layer's checks (even an empty list) replace the
  app.json's; app.json checks for a type the app does not have are ignored with a warning.
- cron: a given upper-layer cron list replaces the app.json's: a TOML `cron` array, even
  `cron = []`, or the cron of the TOML's own app.json (`AppSpec.cron_given`).
- predeploy / postdeploy: the upper layer's replace `scripts.dokku.*`.
- env: upper-layer values win; the app.json's values are defaults. A variable the app.json
  requires (`required`, Dokku's default, and no value) that is still unset (neither in the
  TOML, nor in the app's `env_file`) is an error, "required env var X has no value", as Dokku
  fails such a deploy. A variable with a `generator` that is still unset goes to
  `AppSpec.generate_env`: the supervisor generates it once and keeps it in the env overlay.

And the one order of an app's environment at deploy time (`environment`), highest first:
the overlay (`dockyard env set`, generated secrets) > the `env_file` > the TOML `env` >
app.json `env` values. `dockyard env set` is the operator's latest word, so it wins over files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from supervisor.config.appjson import AppJson
from supervisor.config.procfile import Procfile
from supervisor.model import defaults
from supervisor.model.errors import Problem
from supervisor.model.spec import AppSpec, HealthCheckSpec, ProcessSpec


@dataclass(frozen=True, slots=True)
class Merged:
    spec: AppSpec
    warnings: tuple[str, ...] = ()
    errors: tuple[Problem, ...] = ()  # the caller reports them (TOML) or raises ConfigError (repository)


def defines_commands(processes: Mapping[str, ProcessSpec]) -> bool:
    """True when a process has a command: the process types are fixed (no Procfile, no new
    type from a formation). False: every process runs the image's CMD."""
    return any(p.command is not None for p in processes.values())


def merge(
    app: AppSpec,
    found: AppJson,
    *,
    app_json: str,
    procfile: Procfile | None = None,
    procfile_name: str = "Procfile",
    provided: frozenset[str] = frozenset(),
) -> Merged:
    """`app` with `found` (read from the file named `app_json`) and `procfile` merged under it."""
    warnings: list[str] = []
    errors: list[Problem] = []
    processes = dict(app.processes)
    if procfile is not None:
        if defines_commands(processes):
            warnings.append(str(Problem(procfile_name, "", f"ignored, the config defines the processes of {app.name!r}")))
        else:
            merged = {
                name: ProcessSpec(name, command, processes[name].scale if name in processes else defaults.SCALE)
                for name, command in procfile.items()
            }
            processes = {**merged, **{n: p for n, p in processes.items() if n not in merged}}

    scales_given = set(app.scales_given)
    image_cmd_only = not defines_commands(processes)
    for name, quantity in found.formation.items():
        if name in scales_given:
            continue
        if name in processes or image_cmd_only:
            command = processes[name].command if name in processes else None
            processes[name] = ProcessSpec(name, command, quantity)
            scales_given.add(name)
        else:
            warnings.append(str(Problem(app_json, "", f"formation for process {name!r} ignored: the app has no such process")))

    checks: dict[str, tuple[HealthCheckSpec, ...]] = dict(app.healthchecks)
    for name, found_checks in found.healthchecks.items():
        if name in checks:
            continue
        if name not in processes:
            warnings.append(str(Problem(app_json, "", f"healthchecks for process {name!r} ignored: the app has no such process")))
            continue
        checks[name] = found_checks

    env = {**found.env, **app.env}
    for var in found.required_env:
        if var not in env and var not in provided:
            errors.append(Problem(app_json, "", f"required env var {var} has no value; set it in [apps.{app.name}.env]"))
    generate = tuple(sorted({*app.generate_env, *(v for v in found.generated_env if v not in env)}))

    spec = replace(
        app,
        processes=MappingProxyType(processes),
        scales_given=tuple(sorted(scales_given)),
        healthchecks=MappingProxyType(checks),
        cron=app.cron if app.cron_given else found.cron,
        cron_given=app.cron_given or bool(found.cron),
        predeploy=app.predeploy or found.predeploy,
        postdeploy=app.postdeploy or found.postdeploy,
        env=MappingProxyType(env),
        generate_env=generate,
    )
    return Merged(spec, tuple(warnings), tuple(errors))


def environment(
    env: Mapping[str, str], env_file: Mapping[str, str], overlay: Mapping[str, str]
) -> dict[str, str]:
    """An app's environment: `env` (the TOML over app.json values) under its env_file under
    the overlay (see the module docstring for why)."""
    return {**env, **env_file, **overlay}
