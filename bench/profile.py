"""Read-only profiling of a running worker with py-spy, summarised as hot spots.

py-spy attaches from outside (``--nonblocking``: it never pauses the
worker) and writes a flame graph SVG plus collapsed stacks; the stacks are
summarised here as self and inclusive time per function and self time per
package, so RESULTS.md can name the hot spots without anyone opening the SVG.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from bench.procs import ROOT, child_setup

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def start(pid: int, duration: float, out_dir: Path, cpus: Sequence[int] | None) -> list[subprocess.Popen[bytes]]:
    """Start two samplers on ``pid`` (flame graph and raw stacks); empty if py-spy is missing."""
    exe = py_spy()
    if exe is None:
        return []
    # Blocking mode (py-spy's default) pauses the worker for each sample, microseconds at 100 Hz; --nonblocking
    # lost over 40% of the samples to inconsistent reads of a busy worker. --gil samples only the thread that
    # runs Python: gevent's resolver threads wait on locks and would otherwise count as busy.
    common = ["record", "--pid", str(pid), "--duration", str(max(1, int(duration))), "--function", "--gil"]
    procs = []
    for fmt, name in (("flamegraph", "profile.svg"), ("raw", "profile-stacks.txt")):
        log = open(out_dir / f"{name}.log", "wb")
        procs.append(
            subprocess.Popen(
                [exe, *common, "--format", fmt, "-o", str(out_dir / name)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=child_setup(cpus),
                start_new_session=True,
            )
        )
    return procs


def finish(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _where(file: str) -> str:
    """A short location: py-spy already shortens paths on sys.path; strip what is left of the others."""
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    if "/lib/python3" in file:
        return file.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return file


def _package(file: str) -> str:
    """Top-level package or module of a frame's file (``inspect``, ``openai``, ``webapp``...)."""
    return _where(file).split("/", 1)[0].removesuffix(".py")


def _is_service(file: str) -> bool:
    where = _where(file)
    return where.startswith("webapp/") and "site-packages" not in file


# What a sample of the service worker was doing, by the first marker found in its stack (outermost first).
PHASES = (
    ("producer: openai SDK reads and decodes the upstream SSE", ("Stream.__stream__", "Stream.__iter__", "Stream._iter_events")),
    ("producer: LangChain merges chunks (on_llm_end aggregate)", ("merge_chat_generation_chunks", "ChatGenerationChunk.__add__")),
    (
        "producer: LangChain callbacks / run manager",
        ("CallbackManager", "handle_event", "on_llm_new_token", "on_chat_model_start", "on_llm_end"),
    ),
    (
        "producer: request set-up (ChatOpenAI builds and sends the call)",
        ("BaseChatOpenAI._stream", "_get_request_payload", "SyncAPIClient.", "Completions.create"),
    ),
    ("producer: rest of Producer._produce (event log, stats)", ("Producer._produce",)),
    ("consumer: relay reads the event log and writes the response", ("Relay.", "write", "sendall")),
    ("request: Flask dispatch, JSON, view, Producer/Relay set-up", ("Flask.full_dispatch_request", "Flask.wsgi_app")),
    ("gunicorn: parse request, start/finish response", ("AsyncWorker.handle", "GeventWorker.handle")),
    ("gevent hub, timers and I/O waits", ("Hub.", "gevent/", "_handle_and_close_when_done")),
)


def _phase(stack: list[str]) -> str:
    for name, markers in PHASES:
        if any(marker in frame for frame in stack for marker in markers):
            return name
    return "other"


def summarize(stacks_path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function, self share per package, webapp frames inclusive."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    webapp: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    total = 0
    for line in stacks_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        seen: set[str] = set()
        names = []
        frames = stack.split(";")
        phases[_phase(frames)] += count
        for frame in frames:
            match = FRAME.match(frame)
            func, file = (match["func"], match["file"]) if match else (frame, "?")
            name = f"{_where(file)}:{func}"
            names.append((name, file))
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
                if _is_service(file):
                    webapp[name] += count
        if names:
            leaf, leaf_file = names[-1]
            self_time[leaf] += count
            packages[_package(leaf_file)] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self": share(self_time),
        "inclusive": share(inclusive),
        "packages": share(packages),
        "webapp_inclusive": share(webapp),
        "phases": share(phases),
    }
