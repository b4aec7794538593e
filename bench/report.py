"""Turns one run's measurements into RESULTS.md, results.png and results.json.

Everything here reads the results dict only (no processes), so a report can
be rebuilt from results.json: ``python -m bench.report bench/results.json``.
The targets are the ones in issue #8; each gets a pass/fail with the
numbers it was judged on.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any, Sequence

from bench.servers import CEILING, CEILING_LABEL, CEILING_RELAY, CEILING_RELAY_LABEL, CEILING_STOCK, CEILING_STOCK_LABEL, TARGETS

PACKAGES = (
    "flask",
    "werkzeug",
    "gunicorn",
    "gevent",
    "greenlet",
    "langchain-core",
    "langchain-openai",
    "openai",
    "httpx2",
    "httpcore2",
    "pydantic",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "psutil",
    "matplotlib",
    "py-spy",
)
TOKENS_RATIO_TARGET = 1.3
CEILING_RATIO_TARGET = 0.85
SCALE_STREAMS_TARGET = 5000
SCALE_RSS_KB_TARGET = 16.0
COLD_TOLERANCE = 1.25  # first burst's TTFT p99 may be this much above the later bursts' before it counts as slower


def machine(app_cpus: Sequence[int] | None, load_cpus: Sequence[int] | None) -> dict[str, Any]:
    """What the run happened on: cores, memory, Python, package versions, limits, pinning."""
    import psutil

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "fd_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "packages": versions,
        "app_cpus": list(app_cpus) if app_cpus else None,
        "load_cpus": list(load_cpus) if load_cpus else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# -- lookups -----------------------------------------------------------------


def row(results: dict[str, Any], app: str, c: int) -> dict[str, Any] | None:
    for r in results.get("sweep", []):
        if r.get("app") == app and r.get("concurrency") == c:
            return r
    return None


def rounds_of(results: dict[str, Any], app: str, c: int) -> list[dict[str, Any]]:
    """Every measurement of ``app`` at ``c``: the sweep's (round 1), then the extra rounds."""
    first = row(results, app, c)
    extra = [r for r in results.get("rounds", []) if r.get("app") == app and r.get("concurrency") == c]
    return ([first] if first else []) + extra


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return median(values) if values else None


def nearest_c(cs: Sequence[int], target: int) -> int:
    """The C of ``cs`` nearest ``target`` (the higher on a tie): where the harness runs its rounds and the report judges."""
    return min(cs, key=lambda c: (abs(c - target), -c))


def judged_c(results: dict[str, Any]) -> int | None:
    """The swept C nearest the target C (400 unless the run said otherwise)."""
    cs = sorted({r["concurrency"] for r in results.get("sweep", [])})
    if not cs:
        return None
    return nearest_c(cs, results["settings"].get("target_c", 400))


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 2)


def times(value: float | None) -> str:
    """A ratio as "1.23x", or "-" when it could not be measured."""
    return "-" if value is None else f"{value:.2f}x"


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) < 0.5 * 10**-digits:
            value = 0.0  # no "-0"
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# -- targets -----------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue #8 with what was measured and whether it holds (None: not measured)."""
    out: list[dict[str, Any]] = []
    c = judged_c(results)
    svc = rounds_of(results, "service", c) if c else []
    ref = rounds_of(results, "fastapi", c) if c else []
    ceil = rounds_of(results, CEILING, c) if c else []
    where = f"C={c}" + ("" if c == results["settings"].get("target_c", 400) else " (nearest swept C)")
    n = min(len(svc), len(ref)) if ref else len(svc)
    where += f", median of {n} rounds" if n > 1 else ""

    svc_tok, ref_tok, ceil_tok = (median_of(rows, "tokens_per_s") for rows in (svc, ref, ceil))
    tok = ratio(svc_tok, ref_tok)
    out.append(
        {
            "target": f"tokens/s >= {TOKENS_RATIO_TARGET}x FastAPI reference",
            "where": where,
            "measured": f"{times(tok)} ({fmt(svc_tok)} vs {fmt(ref_tok)})",
            "passed": None if tok is None else tok >= TOKENS_RATIO_TARGET,
        }
    )
    svc_ttft, ref_ttft = median_of(svc, "ttft_p99_ms"), median_of(ref, "ttft_p99_ms")
    ttft = ratio(svc_ttft, ref_ttft)
    out.append(
        {
            "target": "TTFT p99 no worse than the FastAPI reference",
            "where": where,
            "measured": f"{times(ttft)} ({fmt(svc_ttft)} ms vs {fmt(ref_ttft)} ms)",
            "passed": None if ttft is None else ttft <= 1.0,
        }
    )
    errors = sum(r["error_total"] for r in svc)
    out.append(
        {
            "target": "zero errors (service)",
            "where": where.split(",")[0] + (f", all {len(svc)} rounds" if len(svc) > 1 else ""),
            "measured": "-" if not svc else f"{errors} errors in {sum(r['streams'] for r in svc)} streams",
            "passed": None if not svc else errors == 0,
        }
    )
    cr = ratio(svc_tok, ceil_tok)
    out.append(
        {
            "target": f"tokens/s >= {CEILING_RATIO_TARGET}x bare in-process ceiling",
            "where": where,
            "measured": f"{times(cr)} ({fmt(svc_tok)} vs {fmt(ceil_tok)})",
            "passed": None if cr is None else cr >= CEILING_RATIO_TARGET,
        }
    )
    relay = rounds_of(results, CEILING_RELAY, c) if c else []
    if relay:
        relay_tok = median_of(relay, "tokens_per_s")
        rr = ratio(relay_tok, ceil_tok)
        out.append(
            {
                "target": "(breakdown) the relay alone, without HTTP: through Producer + Relay / ceiling",
                "where": where,
                "measured": f"{times(rr)} ({fmt(relay_tok)} vs {fmt(ceil_tok)}); HTTP serving: "
                f"{times(ratio(svc_tok, relay_tok))} of the relay's rate",
                "passed": "info",
            }
        )
    floor = rounds_of(results, "flask-floor", c) if c else []
    if floor:
        floor_tok = median_of(floor, "tokens_per_s")
        out.append(
            {
                "target": "(breakdown) the HTTP floor: a bare Flask generator on the service's client, gunicorn gevent / ceiling",
                "where": where,
                "measured": f"{times(ratio(floor_tok, ceil_tok))} ({fmt(floor_tok)} vs {fmt(ceil_tok)}); the service, "
                f"with its relay, is {times(ratio(svc_tok, floor_tok))} of it",
                "passed": "info",
            }
        )
    stock = rounds_of(results, CEILING_STOCK, c) if c else []
    if stock:
        stock_tok = median_of(stock, "tokens_per_s")
        out.append(
            {
                "target": "(breakdown) the service / the bare loop on a stock ChatOpenAI (no HTTP)",
                "where": where,
                "measured": f"{times(ratio(svc_tok, stock_tok))} ({fmt(svc_tok)} vs {fmt(stock_tok)}); the ceiling above "
                f"is {times(ratio(ceil_tok, stock_tok))} of it: the service's client changes",
                "passed": "info",
            }
        )

    scale = results.get("scale")
    if scale:
        n = scale["streams_target"]
        complete = scale["completed"] == scale["streams"] == n and scale["error_total"] == 0
        nominal = scale["ramp_s"] + (scale["tokens"] - 1) * scale["interval_ms"] / 1000
        out.append(
            {
                "target": f">= {SCALE_STREAMS_TARGET} slow streams on one worker, every one completing",
                "where": f"{n} streams, 1 token / {fmt(scale['interval_ms'])} ms",
                "measured": f"{scale['completed']}/{n} completed, errors {scale['errors'] or 0}, "
                f"{scale['open_streams_at_rss']} open at once (load side), upstream peak {scale['upstream']['peak_active']}; "
                f"the last ended after {fmt(scale['wall_s'], 1)} s (on time: {nominal:.1f} s)",
                "passed": complete and n >= SCALE_STREAMS_TARGET,
            }
        )
        kb = scale.get("rss_per_stream_kb")
        out.append(
            {
                "target": f"RSS growth <= {SCALE_RSS_KB_TARGET:g} KB per open stream",
                "where": f"{n} streams",
                "measured": f"{fmt(kb, 1)} KB ({fmt(_mib(scale.get('rss_idle_bytes')), 1)} "
                f"-> {fmt(_mib(scale.get('rss_open_bytes')), 1)} MiB)",
                "passed": None if kb is None else (kb <= SCALE_RSS_KB_TARGET and n >= SCALE_STREAMS_TARGET),
            }
        )
    else:
        out.append(
            {
                "target": f">= {SCALE_STREAMS_TARGET} slow streams, RSS <= {SCALE_RSS_KB_TARGET:g} KB each",
                "where": "-",
                "measured": "not run",
                "passed": None,
            }
        )

    cold = results.get("cold")
    if cold and len(cold["bursts"]) >= 2:
        boots = cold.get("boots") or [cold["bursts"]]
        first = median(bursts[0]["ttft_p99_ms"] for bursts in boots)
        later = median(b["ttft_p99_ms"] for bursts in boots for b in bursts[1:] if b["ttft_p99_ms"] is not None)
        r = ratio(first, later)
        out.append(
            {
                "target": f"cold start: first burst as fast as later ones (TTFT p99 within {COLD_TOLERANCE}x)",
                "where": f"bursts of {cold['concurrency']}, {len(boots)} fresh worker{'s' if len(boots) > 1 else ''}, medians",
                "measured": f"{times(r)} ({fmt(first)} ms vs {fmt(later)} ms)",
                "passed": None if r is None else r <= COLD_TOLERANCE,
            }
        )
    else:
        out.append({"target": "cold start: first burst as fast as later ones", "where": "-", "measured": "not run", "passed": None})
    return out


def _mib(value: int | None) -> float | None:
    return None if value is None else value / 2**20


def _verdict(passed: bool | str | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a", "info": "breakdown"}[passed]


# -- markdown ----------------------------------------------------------------


def label(app: str) -> str:
    labels = {CEILING: CEILING_LABEL, CEILING_RELAY: CEILING_RELAY_LABEL, CEILING_STOCK: CEILING_STOCK_LABEL}
    return labels.get(app) or (TARGETS[app].label if app in TARGETS else app)


def sweep_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| C | app | tokens/s | TTFT p50 ms | TTFT p99 ms | gap p99 - interval ms | errors | streams | RSS / open stream KB | "
        "worker CPU % | other load on its CPU % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("sweep", []):
        errors = r["error_total"]
        error_text = f"**{errors}** {r['errors']}" if errors else "0"
        lines.append(
            f"| {r['concurrency']} | {label(r['app'])} | {fmt(r['tokens_per_s'])} | {fmt(r.get('ttft_p50_ms'))} | "
            f"{fmt(r.get('ttft_p99_ms'))} | {fmt(r.get('gap_excess_p99_ms'))} | {error_text} | {fmt(r['streams'])} | "
            f"{fmt(r.get('rss_per_stream_kb'), 1)} | {fmt(r.get('app_cpu_pct'))} | {fmt(r.get('foreign_cpu_pct'))} |"
        )
    return lines


def ratio_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| C | service / FastAPI tokens/s | service / ceiling tokens/s | service / FastAPI TTFT p99 | SSE / FastAPI tokens/s | "
        "SSE / FastAPI TTFT p99 | relay without HTTP / ceiling tokens/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sorted({r["concurrency"] for r in results.get("sweep", [])}):
        svc, sse, ref, ceil, relay = (row(results, a, c) for a in ("service", "service-sse", "fastapi", CEILING, CEILING_RELAY))

        def r(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> str:
            value = ratio(a and a.get(key), b and b.get(key))
            return fmt(value and float(value), 2)

        lines.append(
            f"| {c} | {r(svc, ref, 'tokens_per_s')} | {r(svc, ceil, 'tokens_per_s')} | {r(svc, ref, 'ttft_p99_ms')} | "
            f"{r(sse, ref, 'tokens_per_s')} | {r(sse, ref, 'ttft_p99_ms')} | {r(relay, ceil, 'tokens_per_s')} |"
        )
    return lines


def rounds_table(results: dict[str, Any]) -> list[str]:
    """Every round at the judged C, so the spread behind the medians is visible."""
    c = judged_c(results)
    if c is None or not results.get("rounds"):
        return []
    apps = ("service", "fastapi", CEILING)
    per_app = {app: rounds_of(results, app, c) for app in apps}
    count = max(len(rows) for rows in per_app.values())
    lines = [
        "",
        f"Rounds at C={c} (round 1 is the sweep above; the targets use the medians):",
        "",
        "| round | service tokens/s | service TTFT p99 ms | FastAPI tokens/s | FastAPI TTFT p99 ms | ceiling tokens/s | "
        "service / FastAPI tokens/s | service / ceiling |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(count):
        svc, ref, ceil = (per_app[app][i] if i < len(per_app[app]) else None for app in apps)
        lines.append(
            f"| {i + 1} | {fmt(svc and svc['tokens_per_s'])} | {fmt(svc and svc['ttft_p99_ms'])} | "
            f"{fmt(ref and ref['tokens_per_s'])} | {fmt(ref and ref['ttft_p99_ms'])} | {fmt(ceil and ceil['tokens_per_s'])} | "
            f"{times(ratio(svc and svc['tokens_per_s'], ref and ref['tokens_per_s']))} | "
            f"{times(ratio(svc and svc['tokens_per_s'], ceil and ceil['tokens_per_s']))} |"
        )
    med = {app: median_of(per_app[app], "tokens_per_s") for app in apps}
    lines.append(
        f"| median | {fmt(med['service'])} | {fmt(median_of(per_app['service'], 'ttft_p99_ms'))} | {fmt(med['fastapi'])} | "
        f"{fmt(median_of(per_app['fastapi'], 'ttft_p99_ms'))} | {fmt(med[CEILING])} | "
        f"{times(ratio(med['service'], med['fastapi']))} | {times(ratio(med['service'], med[CEILING]))} |"
    )
    return lines


def interference_lines(results: dict[str, Any]) -> list[str]:
    """Runs during which other processes used the app's CPU: their numbers are not to be trusted."""
    rows = [*results.get("sweep", []), *results.get("rounds", [])]
    measured = [r for r in rows if r.get("foreign_cpu_pct") is not None]
    if not measured:
        return ["- Other load could not be measured (no CPU pinning)."]
    noisy = [r for r in measured if r["foreign_cpu_pct"] > NOISY_PCT]
    worst = max(measured, key=lambda r: r["foreign_cpu_pct"])
    if not noisy:
        return [f"- Other processes used at most {fmt(worst['foreign_cpu_pct'])}% of the app's CPU during any run: a quiet machine."]
    names = ", ".join(f"{label(r['app'])} C={r['concurrency']} ({fmt(r['foreign_cpu_pct'])}%)" for r in noisy[:12])
    return [
        f"- **Warning**: other processes used more than {NOISY_PCT}% of the app's CPU during {len(noisy)} of "
        f"{len(measured)} runs: {names}. Those numbers are low; rerun on a quiet machine."
    ]


NOISY_PCT = 5


def upstream_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    check = results.get("upstream_check")
    if check:
        lines.append(
            f"- Upstream alone (load generator straight at it, C={check['concurrency']}, OpenAI chunks parsed): "
            f"**{fmt(check['tokens_per_s'])} tokens/s** of an ideal {fmt(check['ideal_tokens_per_s'])}, "
            f"{check['error_total']} errors, upstream CPU {fmt(check['upstream_cpu_pct'])}% of one core, "
            f"timer late > 5 ms on {check['upstream']['late_sends']} of {check['upstream']['tokens_sent']} sends."
        )
    rows = results.get("sweep", [])
    if rows:
        top = max(rows, key=lambda r: r.get("upstream_cpu_pct") or 0)
        best = max(r["tokens_per_s"] for r in rows)
        late = sum(r["upstream"]["late_sends"] for r in rows if "upstream" in r)
        sent = sum(r["upstream"]["tokens_sent"] for r in rows if "upstream" in r)
        worst = max(r["upstream"]["max_lateness_ms"] for r in rows if "upstream" in r)
        lines.append(
            f"- During the sweep the upstream used at most {fmt(top.get('upstream_cpu_pct'))}% of one core "
            f"({label(top['app'])}, C={top['concurrency']}); its timers fired > 5 ms late on {late} of {sent} token "
            f"sends (worst {fmt(worst, 1)} ms). The fastest app took {fmt(best)} tokens/s, far below what the upstream "
            f"delivers alone: the upstream is not the bottleneck."
        )
    return lines


def profile_lines(results: dict[str, Any]) -> list[str]:
    prof = results.get("profile")
    if not prof:
        return []
    if "error" in prof:
        return ["## Profile of the service", "", f"Not taken: {prof['error']}", ""]
    lines = [
        "## Profile of the service (py-spy, read-only)",
        "",
        f"The service worker at C={prof['concurrency']} for {prof['seconds']:g} s in a run of its own "
        f"({fmt(prof['tokens_per_s'])} tokens/s, TTFT p99 {fmt(prof['ttft_p99_ms'])} ms), {prof['samples']} samples of "
        f"on-CPU stacks of the thread holding the GIL; flame graph: `{prof['svg']}`. py-spy pauses the worker for "
        "each sample, so this run is slower than the sweep: read the shares, not the speed.",
        "",
        "What the worker was doing (each sample counted once, by the first match in this order):",
        "",
        "| activity | % of samples |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {pct} |" for name, pct in prof.get("phases", [])]
    lines += ["", "Inclusive share of the service's own frames (webapp/):", "", "| function | % of samples |", "|---|---:|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in prof["webapp_inclusive"][:12]]
    lines += ["", "Self time by package (where the CPU actually goes):", "", "| package | % self |", "|---|---:|"]
    lines += [f"| {name} | {pct} |" for name, pct in prof["packages"][:12]]
    lines += ["", "Top functions by self time:", "", "| function | % self |", "|---|---:|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in prof["self"][:12]]
    lines += ["", "Top functions by inclusive time:", "", "| function | % inclusive |", "|---|---:|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in prof["inclusive"][:15]]
    return [*lines, ""]


def markdown(results: dict[str, Any], chart: str | None) -> str:
    s = results["settings"]
    m = results.get("machine", {})
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{results['command']}` ({s['preset']} mode) on {results.get('started', '?')}, in "
        f"{fmt(results.get('elapsed_s'), 0)} s. Rebuild this file from `results.json` with `python -m bench.report`.",
        "",
        *(
            [
                f"**{s['preset'].capitalize()} mode**: shorter streams, short loads and a smaller scale scenario; the verdicts "
                "below only show the harness works. Judge the targets on a full run (`python -m bench`).",
                "",
            ]
            if s["preset"] != "full"
            else []
        ),
        "## Targets (issue #8)",
        "",
        "| target | where | measured | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['where']} | {t['measured']} | **{_verdict(t['passed'])}** |" for t in targets(results)]
    lines += [
        "",
        "## All apps side by side",
        "",
        f"Upstream: {s['tokens']} tokens per answer, one every {s['interval'] * 1000:g} ms. Closed loop: C users each "
        f"start their next stream as soon as the last one ends, for {s['duration']:g} s per (app, C)"
        + (
            f" ({s['judged_duration']:g} s at C={s['target_c']}, so that every app's users start a second stream and "
            "TTFT includes new streams waiting behind running ones)"
            if s.get("judged_duration", s["duration"]) != s["duration"]
            else ""
        )
        + "; one worker per app"
        + (f", pinned to CPU {m['app_cpus']} while upstream and load run on CPU {m['load_cpus']}." if m.get("app_cpus") else ".")
        + " Apps in the order measured, one at a time, in the same run.",
        "",
    ]
    lines += sweep_table(results)
    lines += ["", "Ratios (same run, same C):", ""]
    lines += ratio_table(results)
    lines += rounds_table(results)
    if chart:
        lines += ["", f"![tokens/s and TTFT p99 against C]({chart})"]
    cold = results.get("cold")
    if cold:
        lines += [
            "",
            "## Cold start",
            "",
            f"Freshly booted service workers (first request after `/healthz`), each given a burst of {cold['concurrency']} "
            "streams, then the same burst again after the first drained. Bursts are numbered boot.burst.",
            "",
            "| burst | TTFT p50 ms | TTFT p99 ms | tokens/s | errors | wall s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for boot, bursts in enumerate(cold.get("boots") or [cold["bursts"]], 1):
            for i, b in enumerate(bursts, 1):
                lines.append(
                    f"| {boot}.{i}{' (cold)' if i == 1 else ''} | {fmt(b['ttft_p50_ms'])} | {fmt(b['ttft_p99_ms'])} | "
                    f"{fmt(b['tokens_per_s'])} | {b['error_total']} | {fmt(b['wall_s'], 1)} |"
                )
    sc = results.get("scale")
    if sc:
        lines += [
            "",
            "## Scale: slow streams on one worker",
            "",
            f"{sc['streams_target']} streams opened over {sc['ramp_s']:g} s on a fresh service worker (after a 20-stream "
            f"warm-up), each {sc['tokens']} tokens one every {fmt(sc['interval_ms'])} ms.",
            "",
            "| streams | completed | errors | open at once (load side) | upstream peak open | TTFT p50 ms | TTFT p99 ms | "
            "gap p99 - interval ms | RSS idle MiB | RSS with streams open MiB | RSS / open stream KB | worker CPU % | wall s |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {sc['streams']} | {sc['completed']} | {sc['errors'] or 0} | {sc['open_streams_at_rss']} | "
            f"{sc['upstream']['peak_active']} | {fmt(sc['ttft_p50_ms'])} | {fmt(sc['ttft_p99_ms'])} | "
            f"{fmt(sc['gap_excess_p99_ms'])} | {fmt(_mib(sc['rss_idle_bytes']), 1)} | {fmt(_mib(sc['rss_open_bytes']), 1)} | "
            f"{fmt(sc['rss_per_stream_kb'], 1)} | {fmt(sc['app_cpu_pct'])} | {fmt(sc['wall_s'], 1)} |",
        ]
        ce = sc.get("ceiling")
        if ce:
            lines += [
                "",
                f"The bare ceiling (same ChatOpenAI, {ce['concurrency']} greenlets in one process, no HTTP, same "
                f"upstream, same CPU) with the same streams: {ce['completed']}/{ce['concurrency']} completed, "
                f"errors {ce['errors'] or 0}, TTFT p50 {fmt(ce['ttft_p50_ms'])} ms, p99 {fmt(ce['ttft_p99_ms'])} ms, "
                f"{fmt(ce['tokens_per_s'])} tokens/s (the streams ask for "
                f"{fmt(sc['streams_target'] * 1000 / sc['interval_ms'])}), wall {fmt(ce['wall_s'], 1)} s, "
                f"CPU {fmt(ce['app_cpu_pct'])}%, RSS {fmt(ce['rss_per_stream_kb'], 1)} KB per open stream "
                f"({ce['open_streams_at_rss']} open). What the bare client cannot do, no server around it can.",
            ]
    lines += ["", *profile_lines(results)]
    lines += ["## Is the upstream the bottleneck? Was the machine quiet?", "", *upstream_lines(results), *interference_lines(results), ""]
    lines += [
        "## How it was run",
        "",
        "```",
        f"cd {Path(__file__).resolve().parents[1]}",
        "pip install -r requirements.txt -r bench/requirements.txt",
        results["command"],
        "```",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "out_dir"),
        "",
    ]
    if m:
        pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        lines += [
            "## Machine",
            "",
            f"- {m['cpus']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, {m['platform']}",
            f"- Python {m['python']}; file-descriptor limit {m['fd_limit']} (children raise soft to hard)",
            f"- Packages: {pkgs}",
            f"- Pinning: apps and ceiling on CPU {m['app_cpus']}, upstream + load generator + harness on CPU {m['load_cpus']}"
            if m.get("app_cpus")
            else "- No CPU pinning",
            "",
        ]
    lines += ["## Notes", "", *NOTES, ""]
    soak = Path(__file__).with_name("SOAK.md")
    if soak.exists():  # written by hand from `python -m bench.soak` runs: reliability under load and faults
        lines += [soak.read_text().strip(), ""]
    changes = Path(__file__).with_name("CHANGES.md")
    if changes.exists():  # written by hand: what each change to the service bought, and why targets fail
        lines += [changes.read_text().strip(), ""]
    return "\n".join(lines)


NOTES = [
    "- **tokens/s**: every token that reached the load generator, divided by the time from the first request to "
    "the last token. Users stop starting streams after the load duration and the streams still open finish, so "
    "start-up (C streams admitted at once) and drain are both inside: at high C a stream lasts many seconds under "
    "load, and a fixed window would mostly measure the first burst. `results.json` also has `tokens_per_s_window` "
    "(tokens before the users stopped / load duration).",
    "- **TTFT**: from writing the request to the arrival of the first token (not the first byte: the service's SSE "
    "`start` event and headers do not count). Under saturation it is dominated by how the app admits new streams "
    "while others run.",
    "- **gap p99 - interval**: the 99th percentile of the time between consecutive tokens of a stream as received, "
    "minus the upstream's own interval. Tokens that arrive in the same read count as a 0 ms gap, so an app that "
    "batches writes shows a low median and a high p99.",
    "- **errors**: non-200, a transfer cut before its end (chunked terminator; SSE `end` event), a stream with "
    "missing or altered tokens (every answer is compared with the expected text), connect errors, timeouts.",
    "- **RSS / open stream**: the worker's RSS sampled every 100 ms while the load runs; (RSS at the fullest moment - "
    "RSS just before the run) / streams in flight then. In the sweep the worker has run earlier loads, so memory it "
    "kept from them is not counted again: the scale scenario, on a fresh worker, is the number to trust.",
    "- **Noise**: identical runs at C >= 200 differ by 10-15% in tokens/s and far more in TTFT p99 (scheduling "
    "under saturation is chaotic; see the rounds at C=400). That is why the targets are judged on the medians of "
    "several interleaved rounds, and why a ratio near its threshold should be read as 'about equal'.",
    "- **ceiling**: the service's own model (`webapp.providers.build_chat_model`: ChatOpenAI with the service's "
    "client changes) `.stream()`ed in one gevent-patched process with the service worker's resolver and garbage "
    "collector settings, C greenlets in the same closed loop, no HTTP server; pinned to the same CPU as the apps. "
    "So service / ceiling is what the relay and HTTP serving cost, whatever the client layer does.",
    "- **llm.stream() through the relay**: the same loop, each stream read through the service's `Producer` and "
    "`Relay` as SSE frames, still without HTTP: the relay's share of that cost. **stock ChatOpenAI**: the bare loop "
    "on a ChatOpenAI built like the reference apps' (what the client changes are worth).",
    "- The FastAPI reference runs on uvicorn with uvloop and httptools (what `uvicorn[standard]` installs), "
    "the fastest stock set-up, without access log. The Flask references run on plain gunicorn command lines "
    "without access log; the service runs from conf/gunicorn.conf.py, with its access log off (`GUNICORN_ACCESSLOG=`) like theirs.",
    "- The gthread reference gets as many threads as the largest C swept (at least 64), so it never queues "
    "connections; it holds one OS thread per stream.",
    "- ChatOpenAI's default HTTP pool (openai SDK and langchain-openai) allows 1000 connections per client, so "
    "any app beyond 1000 concurrent streams waits for the pool; the scale table shows the upstream's peak of "
    "open streams next to the load side's.",
]


# -- chart ---------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> bool:
    """tokens/s and TTFT p99 against C, one line per app; False if there is nothing to draw."""
    rows = results.get("sweep", [])
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    apps = list(dict.fromkeys(r["app"] for r in rows))
    cs = sorted({r["concurrency"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), dpi=110)
    styles = {
        "service": ("tab:blue", "o", "-"),
        "service-sse": ("tab:cyan", "s", "--"),
        "fastapi": ("tab:red", "^", "-"),
        "flask-gevent": ("tab:green", "D", "-"),
        "flask-gthread": ("tab:olive", "v", "-"),
        CEILING: ("black", "x", ":"),
        CEILING_RELAY: ("dimgray", "+", ":"),
        CEILING_STOCK: ("silver", "x", ":"),
        "flask-floor": ("tab:purple", "P", "--"),
    }
    for app in apps:
        points = sorted((r["concurrency"], r) for r in rows if r["app"] == app)
        color, marker, line = styles.get(app, (None, "o", "-"))
        xs = [c for c, _ in points]
        left.plot(xs, [r["tokens_per_s"] for _, r in points], marker=marker, linestyle=line, color=color, label=label(app))
        ttft = [(c, r.get("ttft_p99_ms")) for c, r in points if r.get("ttft_p99_ms")]
        if ttft:
            right.plot([c for c, _ in ttft], [t for _, t in ttft], marker=marker, linestyle=line, color=color, label=label(app))
    s = results["settings"]
    for axis, title, ylabel in ((left, "Tokens delivered per second", "tokens/s"), (right, "Time to first token, p99", "ms (log)")):
        axis.set_xscale("log")
        axis.set_xticks(cs)
        axis.set_xticklabels([str(c) for c in cs])
        axis.minorticks_off()
        axis.set_xlabel("concurrent streams (C)")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"One worker each, real ChatOpenAI, {s['tokens']} tokens every {s['interval'] * 1000:g} ms upstream ({results['command']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """results.json, results.png and RESULTS.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "results.json"
    data.write_text(json.dumps(results, indent=1, default=str))
    png = out_dir / "results.png"
    drawn = chart(results, png)
    md = out_dir / "RESULTS.md"
    md.write_text(markdown(results, png.name if drawn else None))
    return [md, png, data] if drawn else [md, data]


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    for written in write(json.loads(source.read_text()), source.parent):
        print(written)
