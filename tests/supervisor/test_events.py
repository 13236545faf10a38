"""ops/events.py: the daemon's event bus, and the deploy report feeding it."""

from __future__ import annotations

import asyncio

from supervisor.deploy.report import DeployReport
from supervisor.ops.events import EventBus


async def test_subscribers_get_events_published_after_they_subscribed_of_their_app() -> None:
    bus = EventBus()
    bus.publish({"event": "early", "app": "web"})
    with bus.subscribe("web") as web, bus.subscribe() as everything:
        bus.publish({"event": "deploying", "app": "web", "release": 2})
        bus.publish({"event": "deploying", "app": "api", "release": 7})
        got = await asyncio.wait_for(web.get(), 1)
        assert got["event"] == "deploying" and got["release"] == 2 and "time" in got
        assert web.get_nowait() is None
        assert [(await everything.get())["app"] for _ in range(2)] == ["web", "api"]
        assert bus.subscribers == 2
    assert bus.subscribers == 0
    assert [e["event"] for e in bus.recent("web")] == ["early", "deploying"]
    assert bus.recent("web", since=bus.recent("web")[-1]["time"])[0]["release"] == 2


async def test_a_slow_subscriber_loses_its_oldest_events_and_never_blocks_the_publisher() -> None:
    bus = EventBus(keep=3, queue_size=2)
    with bus.subscribe() as sub:
        for i in range(5):
            bus.publish({"event": "step", "app": "web", "n": i})
        assert sub.dropped == 3
        assert [(await sub.get())["n"] for _ in range(2)] == [3, 4]
    assert [e["n"] for e in bus.recent()] == [2, 3, 4]


async def test_a_deploy_report_publishes_every_event_it_streams() -> None:
    bus = EventBus()
    streamed: list[object] = []
    report = DeployReport("web", release=3, progress=streamed.append, events=bus)
    report.emit("deploying", image="web:2", kind="deploy")
    async with report.step("checks"):
        pass
    names = [(e["event"], e.get("status")) for e in bus.recent("web")]
    assert names == [("deploying", None), ("step", "start"), ("step", "done")]
    assert len(streamed) == 3
