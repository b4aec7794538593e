"""What every stream's history must satisfy after the soak, and the one-line summary.

- it ends in exactly one terminal event (or a typed HTTP answer, such as
  404 after a Redis restart lost the stream): nothing ended silently;
- its sequence numbers run 0, 1, 2... across all its connections: none
  missing, none repeated;
- its text is the uninterrupted answer of the deterministic upstream,
  exactly, when it ended with ``end``, and a prefix of it otherwise (an
  explicit, typed error). Numbering alone cannot show this: a token that
  never reached the log leaves the ids contiguous (``mismatched``);
- an explicit error caused by the service's own infrastructure (the store,
  a lost producer, a stream the store no longer has) is counted apart from
  the upstream's faults (``infrastructure``): a fault the service should
  have absorbed, even though the client was told;
- a run whose client left for good stopped within the grace period;
- the upstream generated each run at most once (exactly once when it
  ended with ``end``), the other requests being retries of injected 429s
  and 500s.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak.client import History
from bench.soak.plan import tag_of
from tests.support.openai_upstream import UpstreamRequest

STOP_MARGIN_SECONDS = 3.0  # the grace is checked every so often, and the close takes a moment to be seen
MAX_RETRIES = 2


@dataclass
class Verdict:
    """The soak's findings; ``ok`` when nothing was lost, duplicated or ended silently."""

    streams: int = 0
    events: int = 0
    cuts: int = 0
    resumes: int = 0
    left: int = 0
    orphaned: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    silent: int = 0
    not_stopped: int = 0
    extra_generations: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    infrastructure: Counter[str] = field(default_factory=Counter)
    upstream_faults: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.silent or self.not_stopped or self.extra_generations)

    def fail(self, what: str, history: History, **detail: Any) -> None:
        self.failures.append({"problem": what, "tag": history.tag, **detail, "history": _as_json(history)})


def _as_json(history: History) -> dict[str, Any]:
    return {
        "tag": history.tag,
        "expected": history.expected,
        "terminal": history.terminal,
        "left_at": history.left_at,
        "gave_up": history.gave_up,
        "orphaned": history.orphaned,
        "connections": [{"method": c.method, "status": c.status, "ended": c.ended, "events": c.events} for c in history.connections],
    }


def _check_sequence(verdict: Verdict, history: History) -> None:
    seqs = history.seqs
    if not seqs:
        return
    repeated = len(seqs) - len(set(seqs))
    if repeated or seqs != sorted(seqs):
        verdict.duplicated += 1
        verdict.fail("a sequence number arrived twice or out of order", history, seqs=seqs)
    elif seqs != list(range(len(seqs))):
        verdict.lost += 1
        verdict.fail("a sequence number is missing", history, seqs=seqs)


# Explicit errors that come from the service's own parts, not from the upstream: each is an answer the
# service lost although the client was told (a 404 after a restart names the stream it no longer has).
INFRASTRUCTURE_ERRORS = frozenset({"store_unavailable", "producer_lost", "stream_not_found", "server_shutdown"})


def _check_text(verdict: Verdict, history: History) -> None:
    """The text against the uninterrupted answer: with ids contiguous, a token can still be missing."""
    text = "".join(data["text"] for _, kind, data in history.events if kind == "token")
    ended = history.terminal is not None and history.terminal[0] == "end"
    if ended and text != history.expected:
        verdict.mismatched += 1
        verdict.fail("ended with end, but the text is not the uninterrupted answer", history, text=text)
    elif not history.expected.startswith(text):
        verdict.mismatched += 1
        verdict.fail("the text is not a prefix of the uninterrupted answer", history, text=text)


def _check_terminal(verdict: Verdict, history: History) -> None:
    if history.orphaned and any(c.status == 200 for c in history.connections):
        verdict.silent += 1  # the service accepted the stream and ended it before the client had an id to resume
        verdict.fail("a start answered 200 ended before its first event id", history)
        return
    if history.orphaned or history.left_at is not None:
        return
    terminal = history.terminal
    if history.gave_up or terminal is None:
        verdict.silent += 1
        verdict.fail("no terminal event after every reconnect", history)
    elif terminal[0] == "end":
        verdict.completed += 1
    elif terminal[0] == "error":
        error = terminal[1].get("error", {}) if isinstance(terminal[1], dict) else {}
        if error.get("type"):
            verdict.errors[error["type"]] += 1
            if error["type"] in INFRASTRUCTURE_ERRORS:
                verdict.infrastructure[error["type"]] += 1
        else:
            verdict.silent += 1
            verdict.fail("an error event without a type", history)
    elif terminal == ("http", 204):
        verdict.silent += 1  # the server says it was over, but the client never saw how it ended
        verdict.fail("204 before the client saw a terminal event", history)
    else:
        body = terminal[1] if isinstance(terminal[1], dict) else {}
        try:
            kind = json.loads(body.get("body", ""))["error"]["type"]
        except (ValueError, KeyError, TypeError):
            kind = f"http_{body.get('status')}"
        verdict.errors[kind] += 1
        if kind in INFRASTRUCTURE_ERRORS:
            verdict.infrastructure[kind] += 1


def _check_upstream(verdict: Verdict, history: History, requests: list[UpstreamRequest], grace: float) -> None:
    generations = [r for r in requests if r.fault not in ("429", "500")]
    ended = history.terminal is not None and history.terminal[0] == "end"
    failed = len(requests) - len(generations)  # the first try and up to MAX_RETRIES retries may fail; then it gives up
    if len(generations) > 1 or (ended and len(generations) != 1) or failed > MAX_RETRIES + 1 or (failed > MAX_RETRIES and generations):
        verdict.extra_generations += 1
        verdict.fail(
            "the upstream was asked for this run more than once (beyond retries)",
            history,
            requests=[(r.fault, r.started) for r in requests],
        )
    if history.left_at is not None:
        for request in generations:
            stopped = request.client_closed_at or request.finished_at
            if stopped is None or stopped - history.left_at > grace + STOP_MARGIN_SECONDS:
                verdict.not_stopped += 1
                verdict.fail(
                    "the run went on after its client left for good",
                    history,
                    stopped_after=None if stopped is None else round(stopped - history.left_at, 2),
                )


def check(histories: list[History], requests: list[UpstreamRequest], grace: float) -> Verdict:
    verdict = Verdict()
    by_tag: dict[str, list[UpstreamRequest]] = {}
    for request in requests:
        tag = tag_of(request.body)
        if tag is not None:
            by_tag.setdefault(tag, []).append(request)
        if request.fault:
            verdict.upstream_faults[request.fault] += 1
    for history in histories:
        verdict.streams += 1
        verdict.events += len(history.events)
        verdict.cuts += history.cuts
        verdict.resumes += sum(1 for c in history.connections if c.method == "GET")
        verdict.left += history.left_at is not None and not history.orphaned
        verdict.orphaned += history.orphaned
        _check_sequence(verdict, history)
        _check_text(verdict, history)
        _check_terminal(verdict, history)
        _check_upstream(verdict, history, by_tag.get(history.tag, []), grace)
    return verdict


def summary(verdict: Verdict, faults: list[tuple[float, str]], seed: int, clients: int, seconds: float) -> str:
    restarts = sum(1 for _, what in faults if what.startswith(("SIGHUP", "SIGTERM")))
    kills = sum(1 for _, what in faults if what.startswith("kill -9"))
    reloads = sum(1 for _, what in faults if what == "nginx reload")
    redis = sum(1 for _, what in faults if what.startswith("Redis restart"))
    failovers = sum(1 for _, what in faults if what == "Sentinel failover: primary killed")
    errors = ", ".join(f"{kind} {count}" for kind, count in sorted(verdict.errors.items())) or "none"
    infrastructure = sum(verdict.infrastructure.values())
    upstream = ", ".join(f"{kind} {count}" for kind, count in sorted(verdict.upstream_faults.items())) or "none"
    return (
        f"soak seed={seed} clients={clients} {seconds:.0f}s: streams {verdict.streams}, events {verdict.events}, "
        f"completed {verdict.completed}, cuts {verdict.cuts}, resumes {verdict.resumes}, left for good {verdict.left}, "
        f"orphaned starts {verdict.orphaned}, restarts {restarts}, worker kills {kills}, nginx reloads {reloads}, "
        f"Redis restarts {redis}, Sentinel failovers {failovers}, upstream faults ({upstream}); "
        f"lost {verdict.lost}, duplicated {verdict.duplicated}, "
        f"content mismatched {verdict.mismatched}, silent cuts {verdict.silent}, not stopped {verdict.not_stopped}, "
        f"extra generations {verdict.extra_generations}; lost to infrastructure {infrastructure}; explicit errors: {errors}"
    )


def write_failures(verdict: Verdict, path: Path) -> None:
    path.write_text("\n".join(json.dumps(failure, default=str) for failure in verdict.failures) + ("\n" if verdict.failures else ""))
