"""Turning load samples and swap timestamps into the swap bench's summary, tables and plots.

Phases of a run (all by each request's due time):
    warmup  the first WARMUP seconds: counted in totals and errors, not in latency phases
    steady  no deploy is running: before the first deploy starts and after the last retire
    swap    2-s windows around each route switch: [swap - 0.5 s, swap + 1.5 s], so the retire of
            the old container (retire_after <= 1 s) falls inside the window
    restart (the restart scenario, `from_start`) from the start of each restart (the new daemon
            launched, or `nginx -s reload` run) to 1.5 s after its switch (the old daemon released
            its listeners, or the reload returned), so the new daemon's start-up is inside
Percentiles cover successful requests only; failures are counted by kind next to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.cli.loadtest.generator import ERROR_KINDS, LoadResult

WARMUP = 1.0
WINDOW_BEFORE = 0.5
WINDOW_AFTER = 1.5
QUIET_MARGIN = 0.5  # steady excludes this much around any deploy activity
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9))


@dataclass(frozen=True, slots=True)
class Swap:
    """One deploy: when it started, when traffic switched, when the old container was gone."""

    started: float
    swapped: float  # NaN when the deploy failed
    finished: float
    ok: bool
    detail: str = ""


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """Nearest-rank percentiles and max, in ms; NaN for no values."""
    data = sorted(v for v in values if not math.isnan(v))
    out: dict[str, float] = {"n": float(len(data))}
    for name, q in PERCENTILES:
        out[name] = data[max(0, math.ceil(q / 100 * len(data)) - 1)] if data else math.nan
    out["max"] = data[-1] if data else math.nan
    return out


def window_text(scenario: str) -> str:
    if scenario == "restart":
        return f"[restart started, switch + {WINDOW_AFTER} s]"
    return f"[swap - {WINDOW_BEFORE} s, swap + {WINDOW_AFTER} s]"


def summarize(name: str, result: LoadResult, swaps: Sequence[Swap], busy_after: float,
              from_start: bool = False) -> dict[str, Any]:
    """The summary of one system. `busy_after`: seconds after a swap until its retire is over.
    `from_start`: windows open when each swap (restart) starts, not WINDOW_BEFORE before it."""
    start = result.t0 + WARMUP
    end = result.t0 + result.duration
    ok_swaps = [s for s in swaps if s.ok]
    windows = [(s.started if from_start else s.swapped - WINDOW_BEFORE, s.swapped + WINDOW_AFTER)
               for s in ok_swaps]
    if swaps:
        quiet_until = swaps[0].started - QUIET_MARGIN
        quiet_from = max(max(s.finished for s in swaps),
                         max((s.swapped + busy_after for s in ok_swaps), default=0.0)) + QUIET_MARGIN
    else:
        quiet_until = quiet_from = end
    steady: list[float] = []
    in_window: list[float] = []
    per_window: list[list[float]] = [[] for _ in windows]
    for due, lat in zip(result.due, result.latency_ms, strict=True):
        if due < start:
            continue
        if due < quiet_until or due > quiet_from:
            steady.append(lat)
        for i, (lo, hi) in enumerate(windows):
            if lo <= due <= hi:
                in_window.append(lat)
                per_window[i].append(lat)
    errors = result.errors()
    lag = percentiles(result.send_lag_ms())
    steady_p = percentiles(steady)
    swap_p = percentiles(in_window)
    ratio = swap_p["p99"] / steady_p["p99"] if steady_p["p99"] and not math.isnan(swap_p["p99"]) else math.nan
    return {
        "system": name,
        "requests": result.requests,
        "errors": {**errors, "total": sum(errors.values())},
        "error_samples": result.error_samples,
        "retries": result.retries,
        "duration": result.duration,
        "target_rate": result.rate,
        "achieved_rate": result.achieved_rate(),
        "workers": result.workers,
        "send_lag_ms": {"p99": lag["p99"], "max": lag["max"]},
        "swaps": {"planned": len(swaps), "ok": len(ok_swaps),
                  "failed": [s.detail for s in swaps if not s.ok]},
        "steady": steady_p,
        "swap_window": swap_p,
        "swap_times": [{"started": round(s.started - result.t0, 3),
                        "swapped": round(s.swapped - result.t0, 3) if s.ok else None,
                        "finished": round(s.finished - result.t0, 3)} for s in swaps],
        "windows": [{"at": round(s.swapped - result.t0, 3), **_short(percentiles(w))}
                    for s, w in zip(ok_swaps, per_window, strict=True)],
        "ratio_p99": ratio,
        "errors_in_windows": _errors_in(result, windows),
    }


def _short(p: dict[str, float]) -> dict[str, float]:
    return {"n": p["n"], "p99": p["p99"], "max": p["max"]}


def _errors_in(result: LoadResult, windows: Sequence[tuple[float, float]]) -> int:
    return sum(1 for due, o in zip(result.due, result.outcome, strict=True)
               if o != "ok" and any(lo <= due <= hi for lo, hi in windows))


def _ms(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _x(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}"


def markdown(summary: dict[str, Any]) -> str:
    systems: list[dict[str, Any]] = summary["systems"]
    meta = summary["meta"]
    scenario = meta.get("scenario", "swap")
    what = ("restarts (dockyard: `serve --takeover`; nginx: `nginx -s reload`, conf unchanged)"
            if scenario == "restart" else
            f"swaps each for dockyard and nginx every {meta['interval']:g} s, retire after "
            f"{meta['retire_after']:g} s; dockyard's swaps by "
            f"{'`dockyard deploy`' if meta.get('deploy_via', 'cli') == 'cli' else 'a POST to its control socket'}, "
            f"nginx's containers by "
            f"{'the `docker` command' if meta.get('peer_via', 'sdk') == 'cli' else 'the bench process Docker client'}")
    lines = [
        f"### {scenario.capitalize()} bench {meta['stamp']}",
        "",
        f"`{meta['command']}`: {meta['rate']:g} req/s open loop per system, app "
        f"{meta.get('app', 'busybox')}, {meta['swaps']} {what}, at most one every "
        f"{meta['interval']:g} s, client keep-alive {'on' if meta['keepalive'] else 'off'}, "
        f"timeout {meta['timeout']:g} s. Windows: {meta.get('windows', '')}. Machine: {meta['machine']}; "
        f"1-min load average {meta['loadavg_1min']['before']:.1f} before, "
        f"{meta['loadavg_1min']['after']:.1f} after.",
        "",
        f"| system | requests | connect | 5xx | timeout | other | retried | achieved req/s | send lag p99 ms | {scenario}s ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in systems:
        e = s["errors"]
        lines.append(
            f"| {s['system']} | {s['requests']} | {e['connect']} | {e['5xx']} | {e['timeout']} | "
            f"{e['other']} | {s['retries']} | {s['achieved_rate']:.0f} | {_ms(s['send_lag_ms']['p99'])} | "
            f"{s['swaps']['ok']}/{s['swaps']['planned']} |"
        )
    for s in systems:
        lines += ["", f"**{s['system']}** latency from the scheduled send time, ms",
                  "", "| phase | n | p50 | p90 | p99 | p99.9 | max |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for phase in ("steady", "swap_window"):
            p = s[phase]
            if p["n"]:
                label = f"{scenario} window" if phase == "swap_window" else phase
                lines.append(f"| {label} | {p['n']:.0f} | " +
                             " | ".join(_ms(p[k]) for k in ("p50", "p90", "p99", "p99.9", "max")) + " |")
    lines += ["", f"| system | steady p99 ms | {scenario}-window p99 ms | ratio | {scenario}-window max ms "
              "| errors in windows |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for s in systems:
        if s["swaps"]["planned"]:
            lines.append(
                f"| {s['system']} | {_ms(s['steady']['p99'])} | {_ms(s['swap_window']['p99'])} | "
                f"{_x(s['ratio_p99'])} | {_ms(s['swap_window']['max'])} | {s['errors_in_windows']} |"
            )
    for s in systems:
        if s["achieved_rate"] < 0.98 * s["target_rate"] or s["send_lag_ms"]["p99"] > 50:
            lines.append(f"\nWarning: the load generator fell behind for {s['system']} "
                         f"({s['achieved_rate']:.0f} of {s['target_rate']:g} req/s, send lag p99 "
                         f"{_ms(s['send_lag_ms']['p99'])} ms): the machine is overloaded; the lag "
                         "is in the latencies (timed from the schedule), try --workers or a lower --rate.")
    for s in systems:
        if "containers_unchanged" in s:
            lines.append(f"\n{s['system']}: app container ids unchanged across the restarts: "
                         f"{'yes' if s['containers_unchanged'] else 'NO'}; every restart's old daemon "
                         f"exited 0: {'yes' if s.get('old_exit_ok') else 'NO'}")
    lines += ["", *(restart_goals(summary) if scenario == "restart" else goals(summary))]
    if summary.get("saturation"):
        from .throughput import markdown as saturation_markdown

        lines += ["", "Saturation (wrk, closed loop; `ours` = dockyard's proxy):", "",
                  saturation_markdown(summary["saturation"])]
    for s in systems:
        if s["error_samples"]:
            lines += ["", f"{s['system']} error samples: " + "; ".join(s["error_samples"][:5])]
    return "\n".join(lines) + "\n"


def goals(summary: dict[str, Any]) -> list[str]:
    """The issue's goals, each stated as met or not with the numbers."""
    by = {s["system"]: s for s in summary["systems"]}
    out = ["Goals:"]
    d, n = by.get("dockyard"), by.get("nginx")
    if d:
        ok = d["errors"]["total"] == 0 and d["swaps"]["ok"] >= 20 and d["achieved_rate"] >= 0.98 * 1000
        out.append(f"- zero failed requests over >= 20 swaps at 1,000 req/s: {'met' if ok else 'NOT met'} "
                   f"({d['errors']['total']} failed of {d['requests']}, {d['swaps']['ok']} swaps, "
                   f"{d['achieved_rate']:.0f} req/s achieved)")
    if d and n:
        ratio_ok = d["ratio_p99"] <= n["ratio_p99"]
        max_ok = d["swap_window"]["max"] <= n["swap_window"]["max"]
        out.append(f"- swap-window/steady p99 no higher than nginx's: {'met' if ratio_ok else 'NOT met'} "
                   f"(dockyard {_x(d['ratio_p99'])}, nginx {_x(n['ratio_p99'])})")
        out.append(f"- swap-window max no higher than nginx's: {'met' if max_ok else 'NOT met'} "
                   f"(dockyard {_ms(d['swap_window']['max'])} ms, nginx {_ms(n['swap_window']['max'])} ms)")
    sat = summary.get("saturation")
    if sat:
        out.append(f"- saturation >= 0.5 x nginx: {'met' if sat['ratio'] >= 0.5 else 'NOT met'} "
                   f"({sat['ratio']:.2f})")
    return out


def restart_goals(summary: dict[str, Any]) -> list[str]:
    """Issue 11's: no failed request across the restarts; and the same comparison as the swaps'."""
    by = {s["system"]: s for s in summary["systems"]}
    out = ["Goals:"]
    d, n = by.get("dockyard"), by.get("nginx")
    if d:
        ok = d["errors"]["total"] == 0 and d["swaps"]["ok"] == d["swaps"]["planned"] > 0
        out.append(f"- zero failed requests across the restarts: {'met' if ok else 'NOT met'} "
                   f"({d['errors']['total']} failed of {d['requests']}, {d['swaps']['ok']}/"
                   f"{d['swaps']['planned']} takeovers, {d['achieved_rate']:.0f} req/s achieved)")
    if d and n:
        ratio_ok = d["ratio_p99"] <= n["ratio_p99"]
        max_ok = d["swap_window"]["max"] <= n["swap_window"]["max"]
        out.append(f"- restart-window/steady p99 no higher than nginx reload's: {'met' if ratio_ok else 'NOT met'} "
                   f"(dockyard {_x(d['ratio_p99'])}, nginx {_x(n['ratio_p99'])})")
        out.append(f"- restart-window max no higher than nginx reload's: {'met' if max_ok else 'NOT met'} "
                   f"(dockyard {_ms(d['swap_window']['max'])} ms, nginx {_ms(n['swap_window']['max'])} ms)")
    return out


def write_samples(result: LoadResult, path: Path) -> None:
    """Every request as CSV (gzip): due time since start (s), send lag (ms), latency (ms), outcome."""
    import gzip

    with gzip.open(path, "wt") as fh:
        fh.write("due_s,send_lag_ms,latency_ms,outcome\n")
        for due, sent, lat, outcome in zip(result.due, result.sent, result.latency_ms,
                                           result.outcome, strict=True):
            fh.write(f"{due - result.t0:.4f},{(sent - due) * 1000:.3f},{lat:.3f},{outcome}\n")


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=_json_default, allow_nan=True) + "\n")


def _json_default(value: Any) -> Any:
    return str(value)


def plot(name: str, result: LoadResult, swaps: Sequence[Swap], path: Path) -> bool:
    """Latency over time with the swaps marked; False when matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = [d - result.t0 for d in result.due]
    ok = [(x, v) for x, v in zip(xs, result.latency_ms, strict=True) if not math.isnan(v)]
    if ok:
        ax.scatter([x for x, _ in ok], [v for _, v in ok], s=1, alpha=0.4, label="latency")
    bad = [x for x, o in zip(xs, result.outcome, strict=True) if o != "ok"]
    if bad:
        top = max((v for _, v in ok), default=1.0)
        ax.scatter(bad, [top] * len(bad), marker="x", color="red", label="failed")
    for i, s in enumerate(swaps):
        if s.ok:
            ax.axvline(s.swapped - result.t0, color="orange", lw=0.8, label="swap" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start (scheduled time)")
    ax.set_ylabel("latency ms")
    ax.set_title(f"{name}: {result.rate:g} req/s")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


__all__ = ["ERROR_KINDS", "Swap", "goals", "markdown", "percentiles", "plot", "restart_goals", "summarize",
           "window_text", "write_json", "write_samples"]
