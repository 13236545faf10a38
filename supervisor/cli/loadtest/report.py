"""A loadtest's figures: per swap and in total, as summary.json, report.md and a PNG.

Phases, by each request's due time (see swaps.py for the windows):
    warmup  the first WARMUP seconds: counted in the totals, not in the latency phases
    swap    inside a swap's windows (the deploy from its start to its end, and its retire)
    steady  everything else
Latency percentiles (nearest rank) cover successful requests; failures are counted by kind
(connect, 5xx, timeout, other) next to them. The swap cost is swap p99 / steady p99.
The verdict: `ok` when no request failed, every planned swap ran and succeeded, and the run
was not interrupted.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from supervisor.cli.loadtest.generator import ERROR_KINDS, LoadResult
from supervisor.cli.loadtest.swaps import WARMUP, Swap, in_windows

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9))
KEPT_UP_RATE = 0.98  # achieved / target below this: the generator fell behind
KEPT_UP_LAG_MS = 50.0  # or a send lag p99 above this
EXAMPLES = 5
PLOT_NAME = "latency.png"
NO_PLOT = "no PNG: matplotlib is not installed (pip install 'dockyard[bench]' or matplotlib)"


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """n, nearest-rank percentiles and max in ms; None where there are no values."""
    data = sorted(v for v in values if not math.isnan(v))
    out: dict[str, Any] = {"n": len(data)}
    for name, q in PERCENTILES:
        out[name] = data[max(0, math.ceil(q / 100 * len(data)) - 1)] if data else None
    out["max"] = data[-1] if data else None
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def failures(outcomes: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
    for outcome in outcomes:
        if outcome != "ok":
            counts[outcome] += 1
    return {**counts, "total": sum(counts.values())}


def summarize(result: LoadResult, swaps: Sequence[Swap], *, planned_swaps: int,
              interrupted: bool = False, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of one run: plain data, JSON-ready (times in s since the first due time)."""
    t0 = result.t0
    windows = [s.windows() for s in swaps]
    steady: list[float] = []
    swapping: list[float] = []
    per_swap: list[list[int]] = [[] for _ in swaps]  # request indexes in each swap's windows
    outside_failed = 0
    for i, (due, lat, outcome) in enumerate(zip(result.due, result.latency_ms, result.outcome, strict=True)):
        inside = False
        for k, spans in enumerate(windows):
            if in_windows(due, spans):
                per_swap[k].append(i)
                inside = True
        if outcome != "ok" and not inside:
            outside_failed += 1
        if due < t0 + WARMUP:
            continue
        (swapping if inside else steady).append(lat)
    steady_p, swap_p = percentiles(steady), percentiles(swapping)
    lag = percentiles(result.send_lag_ms())
    achieved = result.achieved_rate()
    kept_up = achieved >= KEPT_UP_RATE * result.rate and (lag["p99"] or 0.0) <= KEPT_UP_LAG_MS
    failed = failures(result.outcome)
    swaps_ok = sum(1 for s in swaps if s.ok)
    rows = [_swap_row(s, t0, [result.latency_ms[i] for i in idx],
                      [result.outcome[i] for i in idx], steady_p["p99"])
            for s, idx in zip(swaps, per_swap, strict=True)]
    ok = failed["total"] == 0 and swaps_ok == planned_swaps == len(swaps) and not interrupted
    return {
        **(meta or {}),
        "ok": ok,
        "interrupted": interrupted,
        "duration": round(result.duration, 3),
        "requests": result.requests,
        "failed": failed,
        "failed_outside_swaps": outside_failed,
        "examples": result.error_samples[:EXAMPLES],
        "retries": result.retries,
        "rate": {"target": result.rate, "achieved": round(achieved, 1), "workers": result.workers,
                 "send_lag_ms": {"p99": lag["p99"], "max": lag["max"]}, "kept_up": kept_up},
        "latency_ms": {"steady": steady_p, "swap": swap_p,
                       "swap_cost_p99": ratio(swap_p["p99"], steady_p["p99"])},
        "swaps": {"planned": planned_swaps, "ok": swaps_ok, "each": rows},
    }


def _swap_row(s: Swap, t0: float, latencies: list[float], outcomes: list[str],
              steady_p99: float | None) -> dict[str, Any]:
    p = percentiles(latencies)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 3)

    return {
        "index": s.index, "kind": s.kind, "image": s.image, "release": s.release, "ok": s.ok,
        "reason": s.reason or None, "interrupted": s.interrupted,
        "started": rel(s.started), "switched": rel(s.swapped), "finished": rel(s.finished),
        "retired": rel(s.retire_at),
        "seconds": round((s.finished or s.started) - s.started, 3),
        "steps": s.steps,
        "requests": len(outcomes), "failed": failures(outcomes),
        "latency_ms": {k: p[k] for k in ("n", "p50", "p99", "max")},
        "swap_cost_p99": ratio(p["p99"], steady_p99),
    }


# ---- report.md ------------------------------------------------------------------------------


def ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def times(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def verdict(summary: dict[str, Any]) -> str:
    f, sw = summary["failed"], summary["swaps"]
    ran = len(sw["each"])
    failed_swaps = ran - sw["ok"]
    why = []
    if f["total"]:
        kinds = ", ".join(f"{f[k]} {k}" for k in ERROR_KINDS if f[k])
        why.append(f"{f['total']} of {summary['requests']} requests failed ({kinds})")
    if failed_swaps:
        why.append(f"{failed_swaps} of {ran} swaps failed")
    if ran < sw["planned"]:
        why.append(f"{ran} of {sw['planned']} planned swaps ran")
    if summary["interrupted"]:
        why.append("interrupted (Ctrl-C)")
    if not why:
        return (f"**PASS**: 0 of {summary['requests']} requests failed; "
                f"{sw['ok']} of {sw['planned']} swaps succeeded.")
    return "**FAIL**: " + "; ".join(why) + "."


def markdown(summary: dict[str, Any]) -> str:
    lat, rate = summary["latency_ms"], summary["rate"]
    lines = [
        f"# dockyard loadtest: {summary.get('app', '')}",
        "",
        f"`{summary.get('command', '')}`",
        "",
        f"{rate['target']:g} req/s open loop to {summary.get('listener', '')} "
        f"(Host: {summary.get('host', '')}), GET {_paths(summary.get('paths') or [])}, "
        f"for {summary['duration']:.1f} s; {summary.get('swap_mode', '')}. "
        f"Started {summary.get('started_at', '')}.",
        "",
        verdict(summary),
        "",
        "Latency from each request's scheduled send time, ms (of the successful requests, "
        "after the first second):",
        "",
        "| phase | ok | failed | p50 | p90 | p99 | p99.9 | max | p99 vs steady |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    f = summary["failed"]
    outside = summary["failed_outside_swaps"]
    for label, key, failed in (("steady", "steady", outside), ("in swaps", "swap", f["total"] - outside)):
        p = lat[key]
        cost = times(lat["swap_cost_p99"]) if key == "swap" else "1.00x" if p["n"] else "-"
        lines.append(f"| {label} | {p['n']} | {failed} | "
                     + " | ".join(ms(p[k]) for k in ("p50", "p90", "p99", "p99.9", "max")) + f" | {cost} |")
    lines += [
        "",
        f"Requests: {summary['requests']}, failed {f['total']} (connect {f['connect']}, 5xx {f['5xx']}, "
        f"timeout {f['timeout']}, other {f['other']}; {summary['failed_outside_swaps']} outside any swap "
        f"window); {summary['retries']} retried once on a new connection after the server closed "
        "an idle keep-alive connection.",
    ]
    each = summary["swaps"]["each"]
    if each:
        lines += [
            "",
            "| swap | kind | release | result | start s | switch s | end s | retire s | took s | steps s "
            "| requests | failed | p50 ms | p99 ms | max ms | p99 vs steady |",
            "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: "
            "| ---: | ---: |",
        ]
        for s in each:
            result = "ok" if s["ok"] else f"FAILED: {s['reason']}"
            if s["interrupted"]:
                result += " (Ctrl-C during it; left to finish)"
            steps = ", ".join(f"{k} {v:.2f}" for k, v in s["steps"].items()) or "-"
            p = s["latency_ms"]
            lines.append(
                f"| {s['index']} | {s['kind']} | {s['release'] or '-'} | {result} | {secs(s['started'])} | "
                f"{secs(s['switched'])} | {secs(s['finished'])} | {secs(s['retired'])} | {s['seconds']:.2f} | "
                f"{steps} | {s['requests']} | {s['failed']['total']} | {ms(p['p50'])} | {ms(p['p99'])} | "
                f"{ms(p['max'])} | {times(s['swap_cost_p99'])} |"
            )
    lines += [
        "",
        f"Generator: {rate['achieved']:.1f} of {rate['target']:g} req/s achieved, send lag p99 "
        f"{ms(rate['send_lag_ms']['p99'])} ms, max {ms(rate['send_lag_ms']['max'])} ms, "
        f"{rate['workers']} worker process(es).",
    ]
    if not rate["kept_up"]:
        lines += ["", "**Warning: the load generator did not keep up** (achieved rate below "
                  f"{KEPT_UP_RATE:.0%} of the target, or send lag p99 above {KEPT_UP_LAG_MS:g} ms): this "
                  "machine is too busy to send the rate on time. The lag is inside the latencies "
                  "(they are timed from the schedule); try a lower --rate."]
    if summary["examples"]:
        lines += ["", "Failed request examples:", ""] + [f"- {e}" for e in summary["examples"]]
    for note in summary.get("notes") or []:
        lines += ["", note]
    lines += ["", "Windows: a swap's window runs from its start to 1 s after its end, plus "
              "[retire - 0.5 s, retire + 1 s] where retire = switch + retire_after; steady is the "
              "rest after the first second. Times are seconds since the first scheduled request."]
    return "\n".join(lines) + "\n"


def _paths(paths: Sequence[str]) -> str:
    unique = sorted(set(paths))
    if len(unique) == 1:
        return unique[0]
    return f"over {len(unique)} paths ({len(paths)} weighted entries)"


# ---- files ----------------------------------------------------------------------------------


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def write_samples(result: LoadResult, path: Path) -> None:
    """Every request as gzipped CSV: due time since start (s), send lag (ms), latency (ms), outcome."""
    with gzip.open(path, "wt") as fh:
        fh.write("due_s,send_lag_ms,latency_ms,outcome\n")
        for due, sent, lat, outcome in zip(result.due, result.sent, result.latency_ms,
                                           result.outcome, strict=True):
            fh.write(f"{due - result.t0:.4f},{(sent - due) * 1000:.3f},{lat:.3f},{outcome}\n")


def plot(result: LoadResult, swaps: Sequence[Swap], path: Path, title: str) -> bool:
    """Latency over time, failures and each swap's start, switch and retire marked; False when
    matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t0 = result.t0
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = [d - t0 for d in result.due]
    ok = [(x, v) for x, v in zip(xs, result.latency_ms, strict=True) if not math.isnan(v)]
    if ok:
        ax.scatter([x for x, _ in ok], [v for _, v in ok], s=1, alpha=0.4, label="latency")
    bad = [x for x, o in zip(xs, result.outcome, strict=True) if o != "ok"]
    if bad:
        top = max((v for _, v in ok), default=1.0)
        ax.scatter(bad, [top] * len(bad), marker="x", color="red", label="failed")
    marks = (("started", "grey", "--", "swap start"), ("swapped", "orange", "-", "switch"),
             ("retire_at", "green", ":", "retire"))
    for i, s in enumerate(swaps):
        for attr, color, style, label in marks:
            at = getattr(s, attr)
            if at is not None:
                ax.axvline(at - t0, color=color, ls=style, lw=0.9, label=label if i == 0 else None)
        if not s.ok:
            ax.axvspan(s.started - t0, (s.finished or s.started) - t0, color="red", alpha=0.15,
                       label="failed swap")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start (scheduled time)")
    ax.set_ylabel("latency ms")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(summary: dict[str, Any], result: LoadResult, swaps: Sequence[Swap], out: Path) -> str:
    """summary.json, report.md, samples.csv.gz and the PNG into `out`; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    title = f"{summary.get('app', '')}: {result.rate:g} req/s, {len(swaps)} swaps"
    if plot(result, swaps, out / PLOT_NAME, title):
        summary["plot"] = PLOT_NAME
    else:
        summary["plot"] = None
        summary.setdefault("notes", []).append(NO_PLOT)
    write_samples(result, out / "samples.csv.gz")
    write_json(summary, out / "summary.json")
    text = markdown(summary)
    if summary["plot"]:
        text += f"\n![latency over time]({PLOT_NAME})\n"
    (out / "report.md").write_text(text)
    return text
