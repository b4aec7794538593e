"""The producer: runs ``runnable.stream()`` and writes numbered events to a log.

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
from typing import Any, Iterator, Mapping

from langchain_core.runnables import Runnable, RunnableConfig

from webapp.callbacks import CancelOnNextEvent, StreamCancelled, with_handler
from webapp.concurrency import Task, spawn
from webapp.eventlog import MemoryEventLog

log = logging.getLogger(__name__)


def chunk_text(chunk: Any) -> str:
    """The text a streamed chunk adds: message chunks, strings, or dicts with text.

    Message chunks give their text content (content blocks of other types,
    such as tool calls, add nothing); strings are themselves; a dict gives
    its ``"text"``, ``"content"``, ``"answer"`` or ``"output"`` value, the
    first that is present, recursively.
    """
    if chunk is None:
        return ""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, Mapping):
        for key in ("text", "content", "answer", "output"):
            if key in chunk:
                return chunk_text(chunk[key])
        return ""
    content = getattr(chunk, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, Mapping) and part.get("type") == "text")
        )
    return ""


def error_body(exc: BaseException) -> dict[str, Any]:
    """What the client is told about a failure: a type, a safe message, and whether to retry."""
    # By class name through the MRO, so provider wrappers (langchain_openai's
    # OpenAIConnectionError is an openai.APIConnectionError) classify as their bases.
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    if "RateLimitError" in names or status == 429:
        kind, message, retryable = "rate_limited", "The model provider is rate limiting requests.", True
    elif names & {"APITimeoutError", "ReadTimeout", "TimeoutError", "Timeout"}:
        kind, message, retryable = "upstream_timeout", "The model provider did not answer in time.", True
    elif names & {"APIConnectionError", "RemoteProtocolError", "ConnectError", "ConnectionError"}:
        kind, message, retryable = "upstream_unavailable", "The connection to the model provider failed.", True
    elif isinstance(status, int) and 400 <= status < 500:
        kind, message, retryable = "upstream_rejected", "The model provider rejected the request.", False
    else:
        kind, message, retryable = "upstream_error", "The model provider failed while answering.", True
    return {"error": {"type": kind, "message": message, "retryable": retryable}}


@dataclass
class StreamStats:
    """What the per-stream summary log line reports."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens: int = 0
    max_gap: float = 0.0

    def token(self) -> None:
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        else:
            self.max_gap = max(self.max_gap, now - (self.last_token_at or now))
        self.last_token_at = now
        self.tokens += 1

    def summary(self) -> dict[str, Any]:
        ttft = None if self.first_token_at is None else round((self.first_token_at - self.started) * 1000)
        return {
            "ttft_ms": ttft,
            "tokens": self.tokens,
            "max_gap_ms": round(self.max_gap * 1000),
            "duration_ms": round((time.monotonic() - self.started) * 1000),
        }


CANCELLED = {"error": {"type": "cancelled", "message": "The stream was cancelled.", "retryable": False}}


class Generation:
    """One run of a Runnable, feeding one event log."""

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        input: Any,
        log: MemoryEventLog,
        *,
        config: RunnableConfig | None = None,
        start_data: dict[str, Any] | None = None,
    ) -> None:
        self.runnable = runnable
        self.input = input
        self.log = log
        self._cancel = threading.Event()
        self.config = with_handler(config or {}, CancelOnNextEvent(self._cancel))
        self.stats = StreamStats()
        self.outcome: str | None = None
        self._task: Task | None = None
        log.append("start", {"stream_id": log.stream_id, **(start_data or {})})

    @property
    def stream_id(self) -> str:
        return self.log.stream_id

    def start(self) -> "Generation":
        self._task = spawn(self._produce)
        return self

    def cancel(self) -> None:
        """Stop generating: kill the producer where it blocks (gevent), or at its next token, and end the log."""
        self._cancel.set()
        if self._task is not None:
            self._task.kill()
        if self.log.finish("error", CANCELLED):
            self.outcome = self.outcome or "cancelled"

    def join(self, timeout: float | None = None) -> None:
        if self._task is not None:
            self._task.join(timeout)

    def _produce(self) -> None:
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        iterator: Iterator[Any] | None = None
        try:
            iterator = iter(self.runnable.stream(self.input, config=self.config))
            for chunk in iterator:
                if self._cancel.is_set():
                    break
                text = chunk_text(chunk)
                metadata = getattr(chunk, "response_metadata", None) or {}
                finish_reason = metadata.get("finish_reason") or finish_reason
                usage = getattr(chunk, "usage_metadata", None) or usage
                if text:
                    self.stats.token()
                    self.log.append("token", {"text": text})
            else:
                end = {"finish_reason": finish_reason or "stop", "tokens": self.stats.tokens, "usage": dict(usage or {})}
                if self.log.finish("end", end):
                    self.outcome = "completed"
        except StreamCancelled:
            pass  # cancel() already ended the log
        except Exception as exc:  # noqa: BLE001 - every failure must become an error event
            if not self._cancel.is_set():
                log.warning("stream %s: upstream failed: %s: %s", self.stream_id, type(exc).__name__, exc)
                if self.log.finish("error", error_body(exc)):
                    self.outcome = "upstream_error"
        finally:
            # GreenletExit (a kill) lands here too: closing unwinds llm.stream() and its HTTP response.
            if iterator is not None and hasattr(iterator, "close"):
                try:
                    iterator.close()
                except (Exception, StreamCancelled):  # noqa: BLE001
                    log.debug("stream %s: closing the model stream raised", self.stream_id, exc_info=True)
            if self.log.finish("error", CANCELLED):
                self.outcome = self.outcome or "cancelled"
