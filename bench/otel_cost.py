"""OpenTelemetry's cost per token and per stream (issue 27): off, on without an exporter, on with OTLP.

``python -m bench.otel_cost`` streams answers of 50 and 500 tokens from the
scripted model with no delay (``ttft=0``, ``interval=0``: a token costs
only what LangChain and uncut do with it) through ``Streams.stream`` and the
SSE body a WSGI server iterates, under gevent, C streams at a time, and
reports CPU per token and per stream in each mode:

- ``off``: the default ``NoTracer``; uncut imports nothing from
  OpenTelemetry (langsmith, imported by langchain_core, imports the SDK's
  ``TracerProvider`` when it is installed: each worker's ``otel_imported``);
- ``pre-otel`` (``--baseline REV``): the same on uncut as it was at REV,
  extracted with ``git archive`` (the commit before the OTel hook: the code
  path "off" must equal);
- ``handler-only``: OTel off, and one LangChain callback handler that does
  nothing (``BaseCallbackHandler()`` in ``Streams(callbacks=...)``): what
  LangChain's dispatch of every token to one handler costs, without OTel;
- ``sdk``: ``uncut.otel.install`` with the SDK's ``TracerProvider`` (no span
  processor) and ``MeterProvider`` (no reader): spans and metrics made, not
  exported;
- ``otlp``: ``BatchSpanProcessor(OTLPSpanExporter)`` and
  ``PeriodicExportingMetricReader(OTLPMetricExporter)`` sending to a real
  OTLP/HTTP receiver (tests/support/otlp_receiver.py) in another process;
  each block ends with a flush of both, inside its measurement, so the
  export of its spans is counted;
- ``otlp-no-lc``: as ``otlp``, with ``langchain_spans=False`` (its handler
  still records the model call's metrics, so LangChain still calls it);
- ``otlp-span-only``: as ``otlp``, with ``langchain_spans=False`` and
  ``metrics=False``: the stream's span alone, no LangChain handler.

Each mode runs in a worker process of its own, driven over its stdin and
stdout (so "off" runs where OTel was never switched on, and no mode's heap
or GC state weighs on another); one worker works at a time, and each round
runs every mode at both lengths, so a difference with "off" is taken within
a round (paired). Every stream must complete with all its tokens, and the
receiver must have every span the OTLP workers made. Prints JSON (``--out``
writes it) and, on stderr, a markdown table; ``--report`` pools several
runs' JSON into one table (bench/OTEL.md).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after patching, like a gevent worker
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from statistics import median, quantiles  # noqa: E402
from typing import IO, Any, Callable  # noqa: E402

import gevent  # noqa: E402
import gevent.socket  # noqa: E402

from bench.micro import _cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "pre-otel", "handler-only", "sdk", "otlp", "otlp-no-lc", "otlp-span-only")
OTLP_MODES = ("otlp", "otlp-no-lc", "otlp-span-only")
SPREAD = ("median", "p25", "p75", "min", "max")
WARM_UP = {"tokens": 50, "streams": 2, "concurrency": 10}


# -- a worker: one mode, blocks of streams on request ---------------------------------------------


def telemetry_for(mode: str, otlp_url: str | None) -> Callable[[], float]:
    """Switch OpenTelemetry on as ``mode`` says; returns the flush that ends each block (its CPU seconds)."""
    if mode in ("off", "pre-otel", "handler-only"):
        return lambda: 0.0
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from uncut import otel

    if mode == "sdk":
        otel.install(TracerProvider(), MeterProvider())
        return lambda: 0.0
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    assert otlp_url is not None, "otlp modes need the receiver"
    traces = TracerProvider()
    traces.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces")))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{otlp_url}/v1/metrics"), export_interval_millis=60_000)
    meters = MeterProvider(metric_readers=[reader])
    otel.install(traces, meters, langchain_spans=mode == "otlp", metrics=mode != "otlp-span-only")

    def flush() -> float:
        """Export what the block made; the metrics' share (once a block here, once a minute in a service) apart."""
        assert traces.force_flush(30_000), "spans not exported"
        before = _cpu_seconds()
        assert meters.force_flush(30_000), "metrics not exported"
        return _cpu_seconds() - before

    return flush


class GCTime:
    """Time in the collector and collections by generation, from ``gc.callbacks``: a heavier heap shows here first."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.collections[info["generation"]] += 1

    def take(self) -> dict[str, Any]:
        taken = {"gc_s": self.seconds, "gc_collections": self.collections}
        self.seconds, self.collections = 0.0, [0, 0, 0]
        return taken


def worker(mode: str, otlp_url: str | None) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import HumanMessage

    import uncut
    import uncut.telemetry
    from uncut.gunicorn import tune_gc
    from uncut.options import StreamOptions
    from uncut.scripted import ScriptedChatModel
    from uncut.streams import Streams

    flush = telemetry_for(mode, otlp_url)
    summaries: list[dict[str, Any]] = []
    # Admission by loop lag off: a CPU-bound benchmark must not be refused; the same in every mode.
    labels = {"provider": "scripted", "model": "scripted"}
    handlers = [BaseCallbackHandler()] if mode == "handler-only" else []
    app = Streams(StreamOptions(adaptive_admission=False), callbacks=handlers, metadata=labels, on_summary=summaries.append)
    prompt = [HumanMessage("benchmark")]
    tune_gc()  # as the service's worker runs, after start-up
    hello = {"mode": mode, "uncut": str(Path(uncut.__file__).parent), "has_tracer_hook": hasattr(uncut.telemetry, "tracer")}
    hello["otel_imported"] = "opentelemetry" in sys.modules
    _answer(hello)
    collector = GCTime()
    for line in sys.stdin:
        request = json.loads(line)
        model = ScriptedChatModel(tokens=request["tokens"], ttft=0, interval=0)
        summaries.clear()
        gc.collect()  # each block starts with the collector's counts at zero: a full collection lands on no mode by chance
        collector.take()

        def user() -> None:
            for _ in range(request["streams"]):
                body = Streams.body(app.stream(model, prompt), "sse")
                try:
                    for _ in body:
                        pass
                finally:
                    body.close()

        cpu, wall = _cpu_seconds(), time.perf_counter()
        gevent.joinall([gevent.spawn(user) for _ in range(request["concurrency"])], raise_error=True)
        metric_flush = flush()
        cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
        _answer(
            {
                "cpu_s": cpu,
                "wall_s": wall,
                "metric_flush_cpu_s": metric_flush,
                "streams": len(summaries),
                "completed": sum(s["outcome"] == "completed" for s in summaries),
                "tokens": sum(s.get("tokens") or 0 for s in summaries),
                **collector.take(),
            }
        )


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def receiver() -> None:
    """An OTLP/HTTP receiver in a process of its own (its CPU is not the workers'); stdin's end asks for its count."""
    from tests.support.otlp_receiver import OTLPReceiver

    with OTLPReceiver(max_records=200_000, max_lifetime=1800) as otlp:
        _answer({"url": otlp.url})
        stdin = sys.stdin.fileno()
        while True:  # a blocking read would stop the patched process, its server with it
            gevent.socket.wait_read(stdin)
            if not os.read(stdin, 4096):
                break
        names: dict[str, int] = {}
        for span in otlp.spans():
            names[span.name] = names.get(span.name, 0) + 1
        _answer({"spans": names, "metrics": sorted(otlp.metric_names()), "errors": otlp.errors[:5], "dropped": otlp.dropped})


# -- the parent: workers, rounds, the report ------------------------------------------------------


class Worker:
    def __init__(self, mode: str, otlp_url: str | None, cwd: Path | None) -> None:
        command = [sys.executable, "-m", "bench.otel_cost", "--worker", mode] + (["--otlp", otlp_url] if otlp_url else [])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # bench from here; uncut from cwd first (the baseline's)
        self.mode = mode
        self.process = subprocess.Popen(command, cwd=cwd or ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self.read()
        self.streams = 0

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.mode} exited ({self.process.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self, tokens: int, streams: int, concurrency: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"tokens": tokens, "streams": streams, "concurrency": concurrency}) + "\n")
        self.process.stdin.flush()
        block = self.read()
        expected = streams * concurrency
        if block["completed"] != expected or block["tokens"] != expected * tokens:
            raise RuntimeError(f"{self.mode}: {block['completed']}/{expected} streams completed, {block['tokens']} tokens")
        self.streams += expected
        return block

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start_receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.otel_cost", "--receiver"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["url"]


def _received(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None
    stdin.close()
    received: dict[str, Any] = json.loads(stdout.readline())
    process.wait(timeout=30)
    return received


def _baseline_tree(rev: str, into: str) -> Path:
    """uncut/ as it was at ``rev``, extracted into ``into`` (no worktree, nothing in .git changes)."""
    archive = subprocess.run(["git", "archive", rev, "uncut"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True, timeout=60)
    return Path(into)


def _spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles (25th and 75th percentiles) and extremes."""
    p25, _, p75 = quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0], 0.0, values[0])
    return {key: round(value, 2) for key, value in zip(SPREAD, (median(values), p25, p75, min(values), max(values)))}


def _per_token(block: dict[str, Any]) -> float:
    return float(block["cpu_s"] / block["tokens"] * 1e6)


def _per_stream(block: dict[str, Any]) -> float:
    return float(block["cpu_s"] / block["streams"] * 1e6)


def _fit(short: dict[str, Any], long: dict[str, Any]) -> tuple[float, float]:
    """Cost per stream = fixed + tokens x marginal, from one round's blocks at two lengths: (marginal, fixed)."""
    marginal = (_per_stream(long) - _per_stream(short)) / (long["tokens_per_stream"] - short["tokens_per_stream"])
    return marginal, _per_stream(short) - marginal * short["tokens_per_stream"]


def summarise(blocks: list[dict[str, Any]], modes: list[str], lengths: list[int]) -> dict[str, Any]:
    """Per mode and length, over the rounds: CPU per token and per stream, and their difference with "off" in the same
    round (paired, so what drifts between rounds falls out); each as median, min and max."""
    by = {(b["mode"], b["tokens_per_stream"], b["round"]): b for b in blocks}
    rounds = sorted({b["round"] for b in blocks})
    table: dict[str, Any] = {}
    for mode in modes:
        table[mode] = {}
        for tokens in lengths:
            mine = [by[mode, tokens, r] for r in rounds]
            row: dict[str, Any] = {
                "us_per_token": _spread([_per_token(b) for b in mine]),
                "us_per_stream": _spread([_per_stream(b) for b in mine]),
                "metric_flush_us_per_stream": round(median(b["metric_flush_cpu_s"] / b["streams"] * 1e6 for b in mine), 2),
                "gc_us_per_stream": round(median(b["gc_s"] / b["streams"] * 1e6 for b in mine), 2),
            }
            if "off" in modes and mode != "off":
                off = [by["off", tokens, r] for r in rounds]
                row["vs_off_us_per_token"] = _spread([_per_token(b) - _per_token(o) for b, o in zip(mine, off)])
                row["vs_off_us_per_stream"] = _spread([_per_stream(b) - _per_stream(o) for b, o in zip(mine, off)])
            table[mode][str(tokens)] = row
        if len(lengths) == 2:
            short, long = sorted(lengths)
            fits = [_fit(by[mode, short, r], by[mode, long, r]) for r in rounds]
            table[mode]["fit"] = {"us_per_token": _spread([f[0] for f in fits]), "us_per_stream_fixed": _spread([f[1] for f in fits])}
            if "off" in modes and mode != "off":
                offs = [_fit(by["off", short, r], by["off", long, r]) for r in rounds]
                fit = table[mode]["fit"]
                fit["vs_off_us_per_token"] = _spread([f[0] - o[0] for f, o in zip(fits, offs)])
                fit["vs_off_us_per_stream_fixed"] = _spread([f[1] - o[1] for f, o in zip(fits, offs)])
    return table


def _cell(spread: dict[str, float] | None, digits: int, signed: bool = False) -> str:
    """Median [25th–75th percentile]."""
    if spread is None:
        return "—"
    sign = "+" if signed else ""
    return f"{spread['median']:{sign}.{digits}f} [{spread['p25']:{sign}.{digits}f}, {spread['p75']:{sign}.{digits}f}]"


def markdown(table: dict[str, Any], lengths: list[int]) -> str:
    """The table: medians over rounds [25th, 75th percentiles]; the differences with "off" paired by round."""
    lines = [
        "| mode | tokens/stream | CPU µs/token | Δ vs off, µs/token | CPU µs/stream | Δ vs off, µs/stream |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, rows in table.items():
        for tokens in map(str, lengths):
            row = rows[tokens]
            lines.append(
                f"| {mode} | {tokens} | {_cell(row['us_per_token'], 2)} | {_cell(row.get('vs_off_us_per_token'), 2, True)} "
                f"| {_cell(row['us_per_stream'], 0)} | {_cell(row.get('vs_off_us_per_stream'), 0, True)} |"
            )
    if all("fit" in rows for rows in table.values()):
        lines += [
            "",
            f"Cost per stream = fixed + tokens × marginal, fitted per round from the {' and '.join(map(str, lengths))}-token blocks:",
            "",
            "| mode | marginal µs/token | Δ vs off | fixed µs/stream | Δ vs off |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode, rows in table.items():
            fit = rows["fit"]
            lines.append(
                f"| {mode} | {_cell(fit['us_per_token'], 2)} | {_cell(fit.get('vs_off_us_per_token'), 2, True)} "
                f"| {_cell(fit['us_per_stream_fixed'], 0)} | {_cell(fit.get('vs_off_us_per_stream_fixed'), 0, True)} |"
            )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    packages = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "langchain-core", "gevent")
    return {
        "cpu": names[0] if names else platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "loadavg_at_start": os.getloadavg(),
    }


def run(args: argparse.Namespace, log: IO[str]) -> dict[str, Any]:
    modes = [mode for mode in args.modes.split(",") if mode != "pre-otel" or args.baseline]
    lengths = [int(n) for n in args.tokens.split(",")]
    result: dict[str, Any] = {
        "measure": "otel_cost",
        "machine": _machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "blocks": [],
    }
    receiver_process, url = _start_receiver() if any(m in OTLP_MODES for m in modes) else (None, None)
    workers: dict[str, Worker] = {}
    with tempfile.TemporaryDirectory(prefix="uncut-pre-otel-") as scratch:
        try:
            for mode in modes:
                cwd = _baseline_tree(args.baseline, scratch) if mode == "pre-otel" else None
                workers[mode] = Worker(mode, url if mode in OTLP_MODES else None, cwd)
                workers[mode].run(**WARM_UP)
            result["workers"] = {mode: w.hello for mode, w in workers.items()}
            started = time.monotonic()
            for round_ in range(args.rounds):
                order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]  # who goes first rotates
                for tokens in lengths:
                    streams = max(1, round(args.block_tokens / tokens / args.concurrency))
                    for mode in order:
                        block = workers[mode].run(tokens, streams, args.concurrency)
                        result["blocks"].append({"round": round_, "mode": mode, "tokens_per_stream": tokens, **block})
                print(f"round {round_ + 1}/{args.rounds} done, {time.monotonic() - started:.0f} s", file=log, flush=True)
        finally:
            for w in workers.values():
                w.stop()
    if receiver_process is not None:
        received = _received(receiver_process)
        result["received"] = received
        for name, per_stream in (("stream sse", OTLP_MODES), ("chat scripted", ("otlp",))):
            made = sum(workers[m].streams for m in per_stream if m in workers)
            if received["spans"].get(name, 0) != made or received["errors"]:
                raise RuntimeError(f"the receiver has {received['spans'].get(name, 0)} spans {name!r} of {made}: {received}")
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    result["table"] = summarise(result["blocks"], modes, lengths)
    return result


def report(paths: list[Path], out: Path | None) -> None:
    """Summarise the blocks of one run or several pooled (each run's rounds kept apart, so pairs stay within a round)."""
    runs = [json.loads(path.read_text()) for path in paths]
    for run in runs[1:]:
        if list(run["table"]) != list(runs[0]["table"]) or run["args"]["tokens"] != runs[0]["args"]["tokens"]:
            raise SystemExit("--report: the runs differ in modes or lengths")
    lengths = [int(n) for n in runs[0]["args"]["tokens"].split(",")]
    blocks = [
        {**block, "run": index, "round": index * 1000 + block["round"] % 1000} for index, run in enumerate(runs) for block in run["blocks"]
    ]
    table = summarise(blocks, list(runs[0]["table"]), lengths)
    if len(runs) == 1:
        result = {**runs[0], "table": table}
    else:
        kept = ("machine", "args", "workers", "received")
        result = {"measure": "otel_cost", "runs": [{key: run.get(key) for key in kept} for run in runs], "blocks": blocks, "table": table}
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(table, lengths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--baseline", help="a git revision: uncut as it was there is the pre-otel mode (skipped without it)")
    parser.add_argument("--tokens", default="50,500", help="stream lengths, comma-separated")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--block-tokens", type=int, default=10_000, help="tokens per measured block (streams = this / length / C)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument("--report", type=Path, nargs="+", help="summarise these runs' JSON (pooled) and print the table; --out writes it")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--otlp", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        return receiver()
    if args.worker:
        return worker(args.worker, args.otlp)
    if args.report:
        return report(args.report, args.out)
    result = run(args, sys.stderr)
    print(markdown(result["table"], [int(n) for n in args.tokens.split(",")]), file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
