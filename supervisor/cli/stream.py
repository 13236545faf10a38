"""Printing the daemon's NDJSON event streams: a deploy (and rollback, restart, start) and
the image build before a deploy. Used by `dockyard deploy` and by a git push's hook."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from supervisor.cli.canary import line
from supervisor.cli.exits import EXIT_FAIL, EXIT_OK

Event = dict[str, Any]


def follow(events: Iterable[Event]) -> int:
    """Print a deploy's progress as it streams; EXIT_OK when its final result is ok."""
    ok = False
    for event in events:
        kind = event.get("event")
        if kind == "deploying":
            print(f"-----> deploying {event['app']} release {event['release']} ({event['image']})")
        elif kind == "step":
            status, step = event.get("status"), event.get("step")
            if status == "start":
                print(f"       {step} ...", flush=True)
            elif status == "done":
                extra = f" -> {', '.join(event['targets'])}" if event.get("targets") else ""
                print(f"       {step} done in {event.get('seconds', 0):.3f}s{extra}", flush=True)
            else:
                print(f"       {step} FAILED after {event.get('seconds', 0):.3f}s: {event.get('error')}")
        elif kind == "canary":
            _canary(event)
        elif kind == "pull":
            layer = f"{event['id']}: " if event.get("id") else ""
            print(f"       {layer}{event.get('status')}", flush=True)
        elif kind == "deployed":
            print(f"=====> deployed {event['app']} release {event['release']} in {event['seconds']:.3f}s")
            for warning in event.get("warnings") or []:
                print(f"       warning: {warning}")
        elif kind == "failed":
            print(f"=====> deploy of {event['app']} release {event['release']} FAILED: {event['reason']}")
            print("       the previous release keeps serving")
        elif kind == "result":
            ok = bool(event.get("ok"))
            if not ok and event.get("reason") and not event.get("release"):
                print(f"dockyard: {event['reason']}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAIL


def _canary(event: Event) -> None:
    status = event.get("status")
    if status == "start":
        print(f"       canary: {event['percent']:g}% of new clients to release {event['release']} "
              f"for {event['seconds']:g}s (release {event['serving']} serves the rest)", flush=True)
    elif status == "compare":
        print(f"       canary {event['elapsed']:5.1f}s  {line(event)}", flush=True)
    elif status == "promote":
        print(f"       canary promoted: {event.get('reason')}", flush=True)
    elif status == "rollback":
        print(f"       canary ROLLED BACK: {event.get('reason')}", flush=True)
    elif status == "skipped":
        print(f"       canary skipped: {event.get('reason')}", flush=True)


def show_builds(events: Iterable[Event]) -> Iterator[Event]:
    """Print build output and warnings; pass every event on (to `follow`, for the deploy)."""
    for event in events:
        kind = event.get("event")
        if kind == "build":
            status = event.get("status")
            if "line" in event:
                print(f"       {event['line']}")  # flushed when the stream pauses (client._lines)
            elif status == "start":
                print(f"-----> building {event.get('image')} ({event.get('context', '?')} context)", flush=True)
            elif status == "done":
                print(f"-----> built {event.get('image')}", flush=True)
            elif status == "failed":
                print(f"=====> build of {event.get('app')} FAILED: {event.get('error')}", flush=True)
                print("       nothing was deployed; the previous release keeps serving", flush=True)
        elif kind == "warning":
            print(f"       warning: {event.get('message')}", flush=True)
        yield event


def follow_build(events: Iterable[Event]) -> int:
    """A build, then the deploy of what it built."""
    return follow(show_builds(events))
