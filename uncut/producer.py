"""Internal: the producer: runs ``runnable.stream()`` and writes numbered events to a log.

It runs in its own greenlet (a thread without gevent) so that the response
generator, the consumer, stays free to heartbeat through a long model pause
and to notice a client that left. Cancelling it kills the greenlet where it
blocks, which unwinds ``llm.stream()`` and closes the upstream HTTP
response: no further tokens are generated or billed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from langchain_core.runnables import Runnable, RunnableConfig

from uncut.callbacks import CancelOnNextEvent, StreamCancelled, with_handler
from uncut.concurrency import Task, spawn, under_gevent
from uncut.errors import ABANDONED, CANCELLED, TIMEOUT, TOO_LARGE, LogClosedError, error_body
from uncut.eventlog import EventLog, StoreUnavailable
from uncut.events import Emit, StreamEvents
from uncut.graphs import STREAM_MODES, GraphEvents, TaskGreenlets, is_graph
from uncut.options import DISCONNECT_POLICIES
from uncut.shutdown import SHUTDOWN
from uncut.stall import StallLimits, StallWatch
from uncut.telemetry import NO_TRACE, StreamTrace, metrics

log = logging.getLogger(__name__)


# Tokens are added to the tokens counter in batches of this many (and the rest at the end).
TOKENS_PER_METRICS_UPDATE = 64


@dataclass
class StreamStats:
    """What the per-stream summary log line and the stream metrics report."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens: int = 0
    max_gap: float = 0.0
    tokens_reported: int = 0
    reported_finish: bool = False

    def token(self) -> float:
        """Count a text token: its time, the gap since the last output, and the metrics when a batch is full."""
        now = self.output()
        self.tokens += 1
        if self.tokens - self.tokens_reported >= TOKENS_PER_METRICS_UPDATE:
            self.report_tokens()
        return now

    def output(self) -> float:
        """Any output the client sees progress by (text, reasoning, a tool call's fragment): first time and gaps."""
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
            metrics().first_token(now - self.started)
        elif self.last_token_at is not None and now - self.last_token_at > self.max_gap:
            self.max_gap = now - self.last_token_at
        self.last_token_at = now
        return now

    def report_tokens(self) -> None:
        metrics().tokens_streamed(self.tokens - self.tokens_reported)
        self.tokens_reported = self.tokens

    def finished(self) -> None:
        """Report what the batches have not yet, once, when the producer ends (before its end event)."""
        if self.reported_finish:
            return
        self.reported_finish = True
        self.report_tokens()
        metrics().producer_finished(self.max_gap if self.tokens > 1 else None)

    def summary(self) -> dict[str, Any]:
        ttft = None if self.first_token_at is None else round((self.first_token_at - self.started) * 1000)
        return {
            "ttft_ms": ttft,
            "tokens": self.tokens,
            "max_gap_ms": round(self.max_gap * 1000),
            "duration_ms": round((time.monotonic() - self.started) * 1000),
        }


# Event kinds that are a text token: the core's own, and a run streamed by a plan (uncut.agent_server).
TOKEN_KINDS = frozenset({"token", "agent_token"})
# Events that show the run progressing, besides text tokens: they count for time to first output and gaps.
_PROGRESS_KINDS = frozenset({"reasoning", "tool_call", "tool_call_delta"})

TIMEOUT_BODY = TIMEOUT  # the older name (uncut.errors.TIMEOUT)


def _nobody_elsewhere(stream_id: str) -> bool:
    """A log only this process reads: no reader elsewhere, ever."""
    return False


class StreamPlan(Protocol):
    """A run streamed its own way: what the producer iterates, and how each item becomes events.

    The Agent Server API (uncut.agent_server) streams a graph with the modes
    a client asked for and writes LangGraph's own events; everything else
    (the greenlet, the log, budgets, cancel, drain) is the same as any run.
    ``stream`` runs inside the producer, so it may wait (for a thread's
    lease) and its ``finally`` runs however the run ends.
    """

    def stream(self, config: RunnableConfig) -> Iterator[Any]: ...
    def events(self, emit: Emit) -> StreamEvents: ...


@dataclass(frozen=True)
class StreamBudget:
    """What one run may use, whoever reads it and however often they reconnect: None is no bound."""

    max_seconds: float | None = None
    max_events: int | None = None
    max_bytes: int | None = None


class Producer:
    """One run of a Runnable, feeding one event log, and what happens when its readers leave.

    Readers ``attach`` and ``detach``. When the last one leaves: with the
    ``cancel`` policy (or a stream nobody can resume) the run stops at once;
    with ``continue`` it goes on for ``grace_seconds`` so a reconnecting
    client finds it, and stops if nobody (here, or in another worker through
    a shared store) is reading by then.

    A run keeps to its ``budget`` on its own: past its deadline, or once
    its log holds too many events or bytes, it ends with an explicit error
    and stops the model. ``on_end`` is called once when the run is over
    (it releases the run's admission slot).
    """

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        input: Any,
        log: EventLog,
        *,
        config: RunnableConfig | None = None,
        start_data: dict[str, Any] | None = None,
        on_disconnect: str = "cancel",
        grace_seconds: float = 15.0,
        remote_reader: Callable[[str], bool] | None = None,
        shutdown_notice: bool = True,
        budget: StreamBudget = StreamBudget(),
        on_end: Callable[[], None] | None = None,
        stall: StallLimits = StallLimits(),
        plan: StreamPlan | None = None,
        detached: bool = False,
        trace: StreamTrace = NO_TRACE,
    ) -> None:
        if on_disconnect not in DISCONNECT_POLICIES:
            raise ValueError(f"on_disconnect={on_disconnect!r}: must be one of {', '.join(DISCONNECT_POLICIES)}")
        self.runnable = runnable
        self.input = input
        self.log = log
        self.on_disconnect = on_disconnect
        self.plan = plan
        self.detached = detached  # runs to its end (or its budget) whether or not anyone reads it
        self.trace = trace  # the span of the response that started it: current in the producer's greenlet
        self.grace_seconds = grace_seconds
        self._remote_reader = remote_reader or _nobody_elsewhere  # readers in other processes, through a shared store
        self._shutdown_notice = shutdown_notice  # end with server_shutdown before a draining worker's cutoff
        self._cancel = threading.Event()
        self.graph = is_graph(runnable)
        self.stats = StreamStats()
        # A silent model ends the run with upstream_timeout, or is called again if nothing was sent (uncut.stall).
        self._stall = StallWatch(
            stall,
            answered=lambda: self.stats.first_token_at is not None,
            name=log.stream_id,
            on_stall=lambda body: self.cancel(body, outcome="upstream_error"),
            can_retry=under_gevent() and not self.graph,
            graph=self.graph,
        )
        self._task_greenlets: TaskGreenlets | None = None
        self.config = self._with_own_handlers(config or {}, stall)
        self.outcome: str | None = None
        self._task: Task | None = None
        self._lock = threading.Lock()
        self._readers = 0
        self._last_left = time.monotonic()
        self._grace: Task | None = None
        self.budget = budget
        if budget.max_seconds is not None:
            log.deadline = self.stats.started + budget.max_seconds
        self._on_end = on_end
        self._ended = False
        log.append("start", {"stream_id": log.stream_id, **(start_data or {})})

    def _with_own_handlers(self, config: RunnableConfig, stall: StallLimits) -> RunnableConfig:
        """The run's config with the handlers that let it be stopped and watched.

        Under gevent a cancel kills the producer where it blocks (GreenletExit
        unwinds every layer); a thread cannot be interrupted, so it checks a
        flag at each token through a callback, which costs a LangChain
        callback dispatch per token. A graph runs its nodes and tools in
        greenlets of their own: they are remembered, to kill them too.
        """
        if not under_gevent():
            config = with_handler(config, CancelOnNextEvent(self._cancel))
        elif self.graph:
            self._task_greenlets = TaskGreenlets()
            config = with_handler(config, self._task_greenlets)
        if self.graph and stall.on:
            config = with_handler(config, self._stall.model_handler())
        return config

    @property
    def stream_id(self) -> str:
        return self.log.stream_id

    def start(self) -> "Producer":
        with self._lock:
            if self._task is None:
                self._task = spawn(self._produce)
                if self._task.greenlet is not None:  # a greenlet killed before it ran never reaches its finally
                    self._task.greenlet.link(lambda _: self._run_over())
                if self._shutdown_notice:
                    SHUTDOWN.register_producer(self)
        return self

    @property
    def cancelled(self) -> bool:
        """Cancelled (by a client, a budget, a drain): the producer stops at its next chance."""
        return self._cancel.is_set()

    @property
    def started(self) -> bool:
        return self._task is not None

    def _run_over(self) -> None:
        """Once, when the run can produce no more: release what it held."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if self._on_end is not None:
            self._on_end()

    def attach(self) -> None:
        """A reader starts following the stream (starting the run if it has not started)."""
        with self._lock:
            self._readers += 1
        self.start()

    def detach(self, *, resumable: bool) -> None:
        """A reader left; apply the disconnect policy if it was the last."""
        with self._lock:
            self._readers -= 1
            self._last_left = time.monotonic()
            if self._readers > 0 or self.log.finished or self.detached:
                return
        if self.on_disconnect == "cancel" or not resumable:
            self.cancel()
        else:
            self.await_reader()

    def await_reader(self) -> None:
        """Keep running while a reader may come back; stop after ``grace_seconds`` without one."""
        with self._lock:
            if self._grace is None:
                self._grace = spawn(self._watch_readers)

    def _watch_readers(self) -> None:
        while not self.log.finished:
            with self._lock:
                idle = self._readers == 0
                wait = self._last_left + self.grace_seconds - time.monotonic()
            if idle and wait <= 0:
                if self._remote_reader(self.stream_id) or self._readers_moving():
                    self._last_left = time.monotonic()  # someone reads it through the shared store, or is on the way
                    continue
                log.info("stream %s: no reader for %gs; cancelling", self.stream_id, self.grace_seconds)
                self.cancel(ABANDONED, outcome="abandoned")
                return
            time.sleep(max(0.05, wait if idle else self.grace_seconds))

    def _readers_moving(self) -> bool:
        """This worker is draining and sent its readers elsewhere: they are reconnecting, not gone.

        During a deploy a moved reader may bounce off other draining workers
        or wait for a cold one to boot, longer than the grace, before it
        reads again; the drain's cutoff bounds the run instead.
        """
        return self._remote_reader is not _nobody_elsewhere and SHUTDOWN.deadline is not None

    def cancel(self, body: dict[str, Any] = CANCELLED, outcome: str = "cancelled") -> None:
        """Stop generating: end the log, then kill the producer where it blocks (gevent), or stop it at its next token.

        The log is ended first. Ending it waits for an append in flight (the
        log's lock), so the producer is never killed inside a write to a
        shared store: a kill there left the event in Redis but not in the
        producer's copy, the terminal event then found the two apart and
        reached only local readers, and readers elsewhere waited for a
        lease to expire (``producer_lost``) on a run that had been ended.
        """
        self._cancel.set()
        try:
            if self.log.finish("error", body):
                self.outcome = self.outcome or outcome
        except StoreUnavailable:
            pass  # nobody can read the stream anyway
        if self._task is not None:
            self._task.kill()
            if self._task_greenlets is not None:
                self._task_greenlets.kill(spare=self._task.greenlet)
        SHUTDOWN.unregister_producer(self)
        if self._task is None:
            self._run_over()  # it never started: nothing else will

    def join(self, timeout: float | None = None) -> None:
        if self._task is not None:
            self._task.join(timeout)

    def _stream(self) -> Iterator[Any]:
        if self.plan is not None:
            return iter(self.plan.stream(self.config))
        if self.graph:
            return iter(self.runnable.stream(self.input, config=self.config, stream_mode=list(STREAM_MODES)))
        return iter(self.runnable.stream(self.input, config=self.config))

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """One event for the log, within the run's budget; what the client sees progress by is counted."""
        if kind in TOKEN_KINDS:
            now = self.stats.token()
        elif kind in _PROGRESS_KINDS:
            now = self.stats.output()
        else:
            now = time.monotonic()
        log = self.log
        if log.deadline is not None and now >= log.deadline:
            self._over_budget(TIMEOUT_BODY, "timeout")
        self.log.append(kind, data)
        budget = self.budget
        if (budget.max_events is not None and log.count() >= budget.max_events) or (
            budget.max_bytes is not None and getattr(log, "bytes", 0) >= budget.max_bytes
        ):
            self._over_budget(TOO_LARGE, "too_large")

    def _over_budget(self, body: dict[str, Any], outcome: str) -> None:
        """End the run with an explicit error; raising stops the model (the finally closes its stream)."""
        if self.log.finish("error", body):
            self.outcome = self.outcome or outcome
        raise LogClosedError(f"stream {self.stream_id}: {outcome}")

    def _end_data(self, events: StreamEvents) -> dict[str, Any]:
        finish_reason = events.finish_reason or "stop"
        if getattr(events, "interrupted", False):
            finish_reason = "interrupt"
        end: dict[str, Any] = {"finish_reason": finish_reason, "tokens": self.stats.tokens, "usage": dict(events.usage or {})}
        if events.tool_calls and not self.graph:  # a bare model that asked for tools: the caller runs them
            end["tool_calls"] = events.tool_calls
        return end

    def _produce(self) -> None:
        with self.trace.producing():  # a greenlet starts with no context of its own: give it the stream's span
            self._produce_traced()

    def _produce_traced(self) -> None:
        iterator: Iterator[Any] | None = None
        if self.plan is not None:
            events = self.plan.events(self._emit)
        else:
            events = GraphEvents(self._emit) if self.graph else StreamEvents(self._emit)
        try:
            iterator = self._stall.iterate(self._stream)
            for item in iterator:
                if self._cancel.is_set():
                    break
                events.feed(item)
            else:
                events.close()
                end = self._end_data(events)
                self.stats.finished()  # a client that saw `end` and scrapes /metrics finds every token counted
                if self.log.finish("end", end):
                    self.outcome = "completed"
        except (StreamCancelled, LogClosedError):
            pass  # cancelled here, or the stream was ended elsewhere (a DELETE in another worker)
        except Exception as exc:  # noqa: BLE001 - every failure must become an error event
            if not self._cancel.is_set():
                log.warning("stream %s: failed: %s: %s", self.stream_id, type(exc).__name__, exc)
                if self.log.finish("error", error_body(exc)):
                    self.outcome = "store_unavailable" if isinstance(exc, StoreUnavailable) else "upstream_error"
        finally:
            # GreenletExit (a kill) lands here too: closing unwinds llm.stream() and its HTTP response.
            if iterator is not None and hasattr(iterator, "close"):
                try:
                    iterator.close()
                except (Exception, StreamCancelled):  # noqa: BLE001
                    log.debug("stream %s: closing the model stream raised", self.stream_id, exc_info=True)
            try:
                if self.log.finish("error", CANCELLED):
                    self.outcome = self.outcome or "cancelled"
            except StoreUnavailable:
                pass
            self._stall.stop()
            self.stats.finished()
            SHUTDOWN.unregister_producer(self)
            self._run_over()
