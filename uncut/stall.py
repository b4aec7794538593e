"""Internal: stall limits: tell a provider that went silent from one that is slow.

Two limits, each 0 for off (``StreamOptions.first_chunk_timeout_seconds``
and ``between_chunks_timeout_seconds``):

- the wait for the model's first output (long: reasoning models think
  before they show anything), and
- the wait between two chunks once it has shown some (short: a provider
  mid-answer sends many chunks a second).

The clock runs only while the model is being waited on. For a bare model
or chain that is while the producer is inside ``next()`` of its stream
(every chunk the model sends restarts it, output or not, so a provider that
streams invisible reasoning chunks is alive). For a LangGraph graph it is
while one of its chat models runs, from its start callback to its end, and
each model call starts with the first-chunk limit: a tool, or any node's own
work, is never a model stall (the run deadline bounds those).

A stall ends the run with a retryable ``upstream_timeout`` error event. Or,
when nothing but ``start`` is in the log yet, the run is not a graph and the
producer is a greenlet, the silent call is abandoned and made again, at most
``STALL_RETRIES`` times: ``Stalled`` is thrown into the producer where it
blocks, which unwinds ``llm.stream()`` and closes its HTTP response, and a
new ``runnable.stream()`` is a new upstream request. A graph is never re-run
(its checkpointer already holds the input; its tools may have acted), and a
thread cannot be interrupted: there the limit ends the log on time, the
reader gets the terminal event, and the blocked producer stops at its next
chunk (or when the client's own timeout ends its read); whatever it
produces then is discarded, since the log is finished.

The watch costs a loop timer (gevent) or a sleeping thread per run, woken
once per limit, and a clock write per chunk; nothing when both limits are 0.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from uncut.concurrency import under_gevent
from uncut.errors import BETWEEN_CHUNKS_STALL, FIRST_CHUNK_STALL

log = logging.getLogger(__name__)

# How many times a silent model call is made again before the run ends with upstream_timeout.
STALL_RETRIES = 1


RETRY, END = "retry", "end"


class Stalled(BaseException):
    """Thrown into a producer blocked on a silent model, to make the call again.

    A BaseException, as GreenletExit is, so that no layer in between (the
    openai client retries on ``Exception``) takes it for its own failure.
    """


@dataclass(frozen=True)
class StallLimits:
    """Seconds; 0 turns a limit off."""

    first_chunk_seconds: float = 0.0
    between_chunks_seconds: float = 0.0

    @property
    def on(self) -> bool:
        return self.first_chunk_seconds > 0 or self.between_chunks_seconds > 0

    def limit(self, answered: bool) -> float:
        """The limit that applies before (``answered`` False) or after the model's first output; inf when off."""
        seconds = self.between_chunks_seconds if answered else self.first_chunk_seconds
        return seconds if seconds > 0 else float("inf")

    def shortest(self) -> float:
        return min(self.limit(False), self.limit(True))


def verdict(*, answered: bool, retries: int, can_retry: bool) -> str:
    """What a stall leads to: a new call while the client saw nothing and retries are left, else the end."""
    return RETRY if can_retry and not answered and retries < STALL_RETRIES else END


class StallWatch:
    """Watches one run's model for silence; ``on_stall(body)`` ends the run (``Producer.cancel``).

    ``answered()`` says whether the run has appended output (anything past
    ``start``); ``can_retry`` whether a silent call may be made again (a
    greenlet producer, not a graph). For a ``graph`` only its model calls
    are clocked (``model_handler``), never the producer's wait on the
    graph, which spans its tools.
    """

    def __init__(
        self,
        limits: StallLimits,
        *,
        answered: Callable[[], bool],
        on_stall: Callable[[dict[str, Any]], None],
        can_retry: bool,
        graph: bool = False,
        name: str = "",
    ) -> None:
        self.limits = limits
        self.graph = graph
        self._answered = answered
        self._on_stall = on_stall
        self.can_retry = can_retry
        self.name = name
        self.retries = 0
        self._waiting_since: float | None = None  # a bare model: when the producer asked for its next chunk
        self._calls: dict[UUID, list[Any]] = {}  # a graph: each running model call's [since, answered]
        self._producer: Any = None  # the producer's greenlet, to throw Stalled into
        self._timer: _Timer | None = None
        self._ended = False

    # -- what the run tells the watch ---------------------------------------------------

    def iterate(self, make: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        """``make()``'s items, with the producer's waits on it clocked; ``make()`` again after a retried stall."""
        if not self.limits.on:
            return make()
        return self._iterate(make)

    def _iterate(self, make: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        if self.graph:  # its model calls are clocked by their callbacks
            self._start()
            try:
                yield from make()
            finally:
                self.stop()
            return
        if under_gevent():
            from gevent import getcurrent

            self._producer = getcurrent()
        inner = make()
        self._start()
        try:
            while True:
                self._waiting_since = time.monotonic()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                except Stalled:  # thrown by _check: the old call has unwound (its HTTP response closed)
                    _close(inner)
                    self.retries += 1
                    log.warning(
                        "stream %s: the model sent nothing for %gs; calling it again (retry %d of %d)",
                        self.name,
                        self.limits.first_chunk_seconds,
                        self.retries,
                        STALL_RETRIES,
                    )
                    inner = make()
                    continue
                finally:
                    self._waiting_since = None
                yield item
        finally:
            self.stop()
            _close(inner)

    def model_handler(self) -> BaseCallbackHandler:
        """For a graph: the callbacks that clock its chat models' calls."""
        return _ModelCalls(self)

    def model_started(self, run_id: UUID) -> None:
        self._calls[run_id] = [time.monotonic(), False]

    def model_chunk(self, run_id: UUID, output: bool) -> None:
        call = self._calls.get(run_id)
        if call is not None:
            call[0] = time.monotonic()
            call[1] = call[1] or output

    def model_ended(self, run_id: UUID) -> None:
        self._calls.pop(run_id, None)

    def stop(self) -> None:
        self._ended = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()

    # -- the clock ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._timer is None and not self._ended:
            self._timer = _HubTimer(self._check) if under_gevent() else _ThreadTimer(self._check)
            self._timer.schedule(self.limits.shortest())

    def overdue(self, now: float) -> tuple[float, bool]:
        """Seconds until the earliest limit passes (<= 0: stalled now), and whether that call had shown output."""
        limits = self.limits
        waits: list[tuple[float, bool]] = []
        since = self._waiting_since
        if since is not None:
            answered = self._answered()
            waits.append((since + limits.limit(answered) - now, answered))
        for call_since, answered in list(self._calls.values()):
            waits.append((call_since + limits.limit(answered) - now, answered))
        return min(waits, default=(limits.shortest(), False))

    def _check(self) -> float | None:
        """The timer's callback (in the hub under gevent: it must not block): act on a stall, or say when to look again."""
        if self._ended:
            return None
        remaining, answered = self.overdue(time.monotonic())
        if remaining > 0:
            return remaining
        body = BETWEEN_CHUNKS_STALL if answered else FIRST_CHUNK_STALL
        limit = self.limits.limit(answered)
        decided = verdict(answered=answered or self._answered(), retries=self.retries, can_retry=self.can_retry)
        producer = self._producer
        if decided == RETRY and producer is not None and self._waiting_since is not None and not producer.dead:
            # The producer is parked inside next() (the hub runs, so it does not): the throw lands in the model call.
            producer.throw(Stalled())
            return self.limits.shortest()
        self._ended = True
        log.warning("stream %s: the model sent nothing for %gs; ending the stream with upstream_timeout", self.name, limit)
        if under_gevent():
            import gevent

            gevent.spawn(self._on_stall, body)  # the end writes to the store: not in the hub
        else:
            self._on_stall(body)
        return None


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except (Exception, Stalled):  # noqa: BLE001 - closing an abandoned call must not fail the run
            log.debug("closing a stalled model stream raised", exc_info=True)


def _is_output(token: Any, chunk: Any) -> bool:
    """A model chunk the client would see: text, reasoning or tool-call blocks; not an empty role chunk."""
    message = getattr(chunk, "message", None)
    if message is None:
        return bool(token)
    return bool(getattr(message, "content", None) or getattr(message, "tool_call_chunks", None))


class _ModelCalls(BaseCallbackHandler):
    """A graph's chat-model calls, for its StallWatch: started, each chunk, ended."""

    run_inline = True
    raise_error = False

    def __init__(self, watch: StallWatch) -> None:
        self._watch = watch

    def on_chat_model_start(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self._watch.model_started(run_id)

    on_llm_start = on_chat_model_start

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any) -> None:
        self._watch.model_chunk(run_id, _is_output(token, chunk))

    def on_llm_end(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self._watch.model_ended(run_id)

    on_llm_error = on_llm_end


class _Timer:
    def schedule(self, after: float) -> None: ...
    def stop(self) -> None: ...


class _HubTimer(_Timer):
    """A raw loop timer, no greenlet: ``check`` runs in the hub and returns when to run again (None: never)."""

    def __init__(self, check: Callable[[], float | None]) -> None:
        from gevent import get_hub

        self._loop = get_hub().loop
        self._check = check
        self._watcher: Any = None
        self._stopped = False

    def schedule(self, after: float) -> None:
        self._close()
        if not self._stopped:
            self._watcher = self._loop.timer(max(after, 0.001))
            self._watcher.start(self._fire)

    def _fire(self) -> None:
        after = self._check()
        if after is not None:
            self.schedule(after)

    def _close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def stop(self) -> None:
        self._stopped = True
        self._close()


class _ThreadTimer(_Timer):
    """A daemon thread that sleeps until ``check`` is due; ``stop`` wakes it to leave."""

    def __init__(self, check: Callable[[], float | None]) -> None:
        self._check = check
        self._stopped = threading.Event()
        self._after = 0.0

    def schedule(self, after: float) -> None:
        self._after = after
        threading.Thread(target=self._run, daemon=True, name="stall-watch").start()

    def _run(self) -> None:
        after: float | None = self._after
        while after is not None and not self._stopped.wait(min(max(after, 0.001), 3600.0)):
            after = self._check()

    def stop(self) -> None:
        self._stopped.set()
