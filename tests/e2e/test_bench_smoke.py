"""The benchmark harness (bench/, issue #8) end to end in its smoke mode.

Real processes: the local upstream, the service under gunicorn with one
gevent worker, the load generator. Only correctness is asserted (a report
is written, every stream of the service delivered every token); speed
targets live in bench/RESULTS.md, not in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_bounded
from tests.support.servers import ROOT, clean_environ

pytestmark = [pytest.mark.e2e, pytest.mark.alone]

SMOKE_TOKENS = 5  # what `python -m bench --smoke` asks the upstream for
PRE_OTEL = "eb8a0e1^"  # the commit before the OpenTelemetry hook (issue 27)


@pytest.mark.timeout(90)
def test_smoke_run_reports_the_service_with_every_token_and_no_error(tmp_path: Path) -> None:
    out = tmp_path / "bench-out"
    completed = run_bounded(
        [sys.executable, "-m", "bench", "--smoke", "--out-dir", str(out)],
        cwd=ROOT,
        env=clean_environ(),
        text=True,
        timeout=75,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    report = (out / "RESULTS.md").read_text()
    assert "service (gevent, text)" in report and "service (gevent, SSE)" in report
    results = json.loads((out / "results.json").read_text())
    rows = {row["app"]: row for row in results["sweep"]}
    for app in ("service", "service-sse"):
        row = rows[app]
        assert row["streams"] > 0 and row["completed"] == row["streams"], row
        assert row["error_total"] == 0, row["errors"]
        assert row["tokens_per_stream"] == [SMOKE_TOKENS]
        assert row["tokens_total"] == SMOKE_TOKENS * row["streams"]


@pytest.mark.timeout(90)
def test_the_micro_benchmarks_report_every_mode_and_depth() -> None:
    """`bench.micro` runs the real Producer and Relay under gevent; only the report's shape is asserted."""
    relay = run_bounded(
        [
            sys.executable,
            "-m",
            "bench.micro",
            "relay",
            "--concurrency",
            "5",
            "--streams",
            "2",
            "--tokens",
            "5",
            "--interval",
            "0.001",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        env=clean_environ(),
        text=True,
        timeout=60,
    )
    assert relay.returncode == 0, relay.stderr[-4000:]
    report = json.loads(relay.stdout)
    modes = ["bare", "text", "sse", "ui", "responses"]
    assert set(report["cpu_us_per_token"]) == set(modes)
    assert all(value > 0 for value in report["cpu_us_per_token"].values())
    assert [r["mode"] for r in report["rounds"]] == modes

    greenlet = run_bounded(
        [sys.executable, "-m", "bench.micro", "greenlet", "--greenlets", "200"],
        cwd=ROOT,
        env=clean_environ(),
        text=True,
        timeout=60,
    )
    assert greenlet.returncode == 0, greenlet.stderr[-4000:]
    assert set(json.loads(greenlet.stdout)["kb_per_greenlet"]) == {"depth 0", "depth 5", "depth 15"}


@pytest.mark.timeout(120)
def test_the_otel_cost_benchmark_runs_every_mode_and_the_receiver_gets_every_span() -> None:
    """`bench.otel_cost`: OTel off, before OTel (the commit before its hook, when this checkout has it), on without an exporter
    and on with OTLP to a real receiver; the script fails unless every stream completed and every span arrived, so only the
    report's shape is asserted here."""
    has_baseline = (
        subprocess.run(["git", "cat-file", "-e", f"{PRE_OTEL}^{{commit}}"], cwd=ROOT, capture_output=True, timeout=30).returncode == 0
    )
    tiny = "--tokens 5,10 --concurrency 3 --block-tokens 60 --rounds 1".split()
    baseline = ["--baseline", PRE_OTEL] if has_baseline else []
    run = run_bounded([sys.executable, "-m", "bench.otel_cost", *baseline, *tiny], cwd=ROOT, env=clean_environ(), text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout)
    modes = ["off", *(["pre-otel"] if has_baseline else []), "handler-only", "sdk", "otlp", "otlp-no-lc", "otlp-span-only"]
    assert list(report["table"]) == modes
    assert all(report["table"][mode][length]["us_per_token"]["median"] > 0 for mode in modes for length in ("5", "10"))
    assert report["workers"]["off"]["has_tracer_hook"] is True
    if has_baseline:
        assert report["workers"]["pre-otel"]["has_tracer_hook"] is False  # uncut as it was, not this checkout's
    assert report["received"]["spans"]["stream sse"] > 0 and not report["received"]["errors"]
