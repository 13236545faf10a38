"""The Swarm mapping without Docker: spec -> service create arguments, task -> ContainerInfo,
slot ids, the config keys, and which runtime SelectRuntime picks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from supervisor.config.loader import parse_config
from supervisor.model.errors import ConfigError, RuntimeFailure
from supervisor.runtime import services as svc
from supervisor.runtime.containers import oneoff_spec, process_spec
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec
from supervisor.runtime.select import SelectRuntime
from supervisor.runtime.swarmread import not_a_manager_message
from tests.fakes import FakeRuntime


def config(tmp_path: Path, app: dict[str, Any], **server: Any) -> Any:
    data = {"server": {"state_dir": str(tmp_path), **server}, "apps": {"hello": {"image": "hello:1", **app}}}
    return parse_config(data, tmp_path / "dockyard.toml")


def web_spec(tmp_path: Path, **app: Any) -> ContainerSpec:
    cfg = config(tmp_path, {"scheduler": "swarm", **app}, instance="edge")
    return process_spec(cfg.apps["hello"], image="hello:1", instance="edge", release=8, process="web", index=1)


def test_the_server_default_applies_to_apps_without_their_own(tmp_path: Path) -> None:
    cfg = config(tmp_path, {}, scheduler="swarm")
    assert cfg.server.scheduler == "swarm" and cfg.apps["hello"].scheduler == "swarm"
    cfg = config(tmp_path, {"scheduler": "docker"}, scheduler="swarm")
    assert cfg.apps["hello"].scheduler == "docker"
    assert config(tmp_path, {}).apps["hello"].scheduler == "docker"


@pytest.mark.parametrize(("app", "message"), [
    ({"scheduler": "k8s"}, "must be one of docker, swarm"),
    ({"scheduler": "swarm", "placement": ["node.labels.tier=web"]}, "placement[0]: must be a Swarm constraint"),
    ({"scheduler": "swarm", "network": "host"}, "not supported with scheduler = \"swarm\""),
])
def test_bad_scheduler_keys_are_reported(tmp_path: Path, app: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, app)
    assert message in str(err.value)


def test_placement_constraints_in_swarm_syntax_are_accepted(tmp_path: Path) -> None:
    placement = ["node.labels.tier==web", "node.role != manager", "engine.labels.disk==ssd", "node.hostname==a1"]
    assert config(tmp_path, {"scheduler": "swarm", "placement": placement}).apps["hello"].placement == tuple(placement)


def test_a_release_x_process_type_becomes_one_service(tmp_path: Path) -> None:
    spec = web_spec(tmp_path, env={"A": "1"}, stop_timeout=7, restart="on-failure:4",
                    limits={"memory": "256m", "cpus": 0.5}, placement=["node.labels.tier==web"],
                    volumes=["/srv/data:/data:ro", "cache:/cache"],
                    processes={"web": {"command": "httpd -f -p $PORT", "scale": 3}})
    kwargs = svc.service_spec(spec, 3)
    assert kwargs["name"] == "edge_hello_web_r8"
    assert kwargs["mode"] == {"Replicated": {"Replicas": 3}}
    assert kwargs["labels"]["dockyard.app"] == "hello" and kwargs["labels"]["dockyard.release"] == "8"
    assert kwargs["labels"][svc.LABEL_SWARM] == "app"
    template = kwargs["task_template"]
    container = template["ContainerSpec"]
    assert container["Image"] == "hello:1"
    assert container["Args"] == ["/bin/sh", "-c", "httpd -f -p $PORT"]
    assert "A=1" in container["Env"] and "PORT=5000" in container["Env"]
    assert container["StopGracePeriod"] == 7_000_000_000
    assert "dockyard.app" not in container["Labels"]  # plain-container listings never see tasks
    assert container["Mounts"] == [
        {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": True},
        {"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": False},
    ]
    limits = {"MemoryBytes": 256 * 1024**2, "NanoCPUs": 500_000_000}
    assert template["Resources"] == {"Limits": limits, "Reservations": limits}
    assert template["RestartPolicy"] == {"Condition": "on-failure", "Delay": svc.RESTART_DELAY_NS, "MaxAttempts": 4}
    assert template["Placement"] == {"Constraints": ["node.labels.tier==web"]}
    assert kwargs["endpoint_spec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 5000, "PublishMode": "host"}]


@pytest.mark.parametrize(("policy", "condition", "attempts"), [
    ("no", "none", 0), ("always", "any", 0), ("unless-stopped", "any", 0),
    ("on-failure", "on-failure", 0), ("on-failure:10", "on-failure", 10),
])
def test_restart_policies_in_swarm_words(policy: str, condition: str, attempts: int) -> None:
    result = svc.restart_policy(policy)
    assert (result["Condition"], result["MaxAttempts"]) == (condition, attempts)


def test_a_one_off_is_a_replicated_job_that_is_never_restarted(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"scheduler": "swarm"})
    spec = oneoff_spec(cfg.apps["hello"], image="hello:1", instance="dockyard", release=2,
                       role="cron", command="echo hi", suffix="greet.1")
    kwargs = svc.service_spec(spec, 1, job=True)
    assert kwargs["mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert kwargs["task_template"]["RestartPolicy"]["Condition"] == "none"
    assert kwargs["name"] == "hello_cron_greet_1" and "endpoint_spec" not in kwargs


def task(state: str, *, slot: int = 2, desired: str = "running", index: int = 10, code: int | None = None) -> dict[str, Any]:
    return {
        "ID": f"task{index}", "Slot": slot, "NodeID": "n1", "DesiredState": desired,
        "Version": {"Index": index},
        "Status": {"State": state, "Timestamp": "2026-12-02T05:00:00.123456789Z",
                   "ContainerStatus": {"ContainerID": "c" * 64, "PID": 42, "ExitCode": code},
                   "PortStatus": {"Ports": [{"TargetPort": 5000, "PublishedPort": 30001, "PublishMode": "host"}]}},
    }


LABELS = {"dockyard.app": "hello", "dockyard.process": "web", "dockyard.release": "8", "dockyard.instance": "dockyard"}


def test_a_task_is_the_container_info_of_its_slot() -> None:
    info = svc.task_info(task("running"), LABELS, service="hello_web_r8", node_name="vps2", host="10.0.0.2")
    assert info.id == "hello_web_r8.2" and info.name == "hello.web.2.r8"
    assert info.running and info.pid == 42 and info.started_at is not None
    assert info.ports == {5000: 30001} and info.host == "10.0.0.2"
    assert info.labels["dockyard.node"] == "vps2" and info.labels[svc.LABEL_TASK] == "task10"
    assert (info.app, info.process, info.release) == ("hello", "web", 8)
    dead = svc.task_info(task("failed", code=137), LABELS, service="hello_web_r8")
    assert (dead.status, dead.exit_code) == ("exited", 137)
    assert svc.task_info(task("preparing"), LABELS, service="s_r1").status == "created"
    down = svc.task_info(task("running"), LABELS, service="s_r1", node_ready=False)
    assert not down.running  # a node that is down takes its tasks out


def test_the_slot_stands_for_its_newest_wanted_task() -> None:
    old = task("failed", desired="shutdown", index=5, code=1)
    new = task("starting", index=9)
    assert svc.current_task([old, new]) is new
    assert svc.current_task([old]) is old
    assert svc.current_task([]) is None


def test_slot_ids_are_told_apart_from_container_ids() -> None:
    assert svc.parse_slot_id("hello_web_r8.2") == ("hello_web_r8", 2)
    assert svc.parse_slot_id("edge_my-app_worker_r12.10") == ("edge_my-app_worker_r12", 10)
    assert svc.parse_slot_id("a" * 64) is None
    assert svc.parse_slot_id("hello.web.1.r7") is None


def test_ipv4_host_ports_win_over_ipv6_ones() -> None:
    bindings = {"5000/tcp": [{"HostIp": "::", "HostPort": "32770"}, {"HostIp": "0.0.0.0", "HostPort": "32771"}]}
    assert svc.ipv4_ports(bindings) == {5000: 32771}


def test_not_a_manager_says_what_to_do() -> None:
    assert "docker swarm init" in (not_a_manager_message({"Swarm": {"LocalNodeState": "inactive"}}) or "")
    worker = not_a_manager_message({"Swarm": {"LocalNodeState": "active", "ControlAvailable": False}})
    assert worker is not None and "worker" in worker
    assert not_a_manager_message({"Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}) is None


async def test_select_runtime_sends_each_call_to_its_scheduler(tmp_path: Path) -> None:
    docker, swarm = FakeRuntime(), FakeRuntime()
    runtime = SelectRuntime(docker, swarm)
    plain = ContainerSpec(name="a.web.1.r1", image="app:v1", command=None, env=MappingProxyType({}), labels=MappingProxyType({}))
    info = await runtime.run(plain)
    assert info.id in docker.containers and not swarm.containers
    swarm_spec = web_spec(tmp_path)
    assert runtime.for_spec(swarm_spec) is swarm
    assert runtime._for_id("hello_web_r8.1") is swarm and runtime._for_id(info.id) is docker
    with pytest.raises(RuntimeFailure, match="without Swarm"):
        SelectRuntime(docker).for_spec(swarm_spec)
    await docker.close()


async def test_select_runtime_creates_by_scheduler_and_pulls_on_this_engine(tmp_path: Path) -> None:
    """`dockyard run` creates on the app's runtime; a pull (#20) always goes to this engine."""
    from supervisor.runtime.swarm import SwarmRuntime

    docker, swarm = FakeRuntime(), FakeRuntime()
    runtime = SelectRuntime(docker, swarm)
    plain = ContainerSpec(name="a.run.r1.x", image="app:v1", command=("true",), env=MappingProxyType({}),
                          labels=MappingProxyType({}))
    info = await runtime.create(plain)
    assert info.id in docker.containers and not swarm.containers
    await runtime.create(web_spec(tmp_path))
    assert swarm.containers
    docker.registry.add("registry.test/app:2")
    events: list[Any] = []
    await runtime.pull("registry.test/app:2", {"username": "u", "password": "p"}, events.append)
    assert docker.journal.ops("pull") == [("pull", "registry.test/app:2", {"username": "u", "password": "p"})]
    assert not swarm.journal.ops("pull") and events
    with pytest.raises(RuntimeFailure, match="not supported on swarm"):
        await SwarmRuntime(client=object()).create(web_spec(tmp_path))
    await docker.close()


async def test_nodes_need_swarm_and_list_each_node_with_its_tasks(tmp_path: Path) -> None:
    from supervisor.model.errors import DeployError
    from supervisor.runtime.swarmread import NodeInfo
    from tests.fakes import fast_app, rig

    async with rig(tmp_path, {"web": fast_app()}) as r:
        with pytest.raises(DeployError, match="without Swarm"):
            await r.sup.nodes()

    class Nodes(FakeRuntime):
        async def list(self, labels: Any) -> list[ContainerInfo]:  # type: ignore[override]
            task = {"dockyard.app": "web", "dockyard.node": "vps1", "dockyard.instance": "fake"}
            return [ContainerInfo("web_web_r1.1", "web.web.1.r1", MappingProxyType(task), "running")]

        async def nodes(self) -> Sequence[NodeInfo]:
            return [NodeInfo("n1" * 10, "vps1", "127.0.0.1", "ready", "active", "manager", True, {}),
                    NodeInfo("n2" * 10, "vps2", "10.0.0.2", "down", "drain", "worker")]

    async with rig(tmp_path / "2", {"web": fast_app()}) as r:
        assert (await r.deploy("web")).ok
        r.sup.runtime = SelectRuntime(r.runtime, swarm := Nodes())
        rows = await r.sup.nodes()
        assert [(n["hostname"], n["state"], n["availability"], n["tasks"]) for n in rows] == [
            ("vps1", "ready", "active", ["web.web.1.r1"]), ("vps2", "down", "drain", [])]
        assert rows[0]["leader"] and rows[0]["id"] == ("n1" * 10)[:12]
        await swarm.close()
