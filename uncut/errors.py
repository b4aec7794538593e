"""Every error uncut raises, every error it puts on the wire, and every way a stream can end.

Exceptions
----------

Each derives from ``UncutError`` (catch that to catch them all) and keeps
the builtin base it always had, so ``except LookupError`` still catches a
``StreamNotFound``. Each is also importable from the module that raises it.

::

    UncutError
    ├── OptionError (ValueError) ............ uncut.options: an option outside what it accepts
    ├── AsyncCallbackError (TypeError) ...... uncut.callbacks: an async handler on the sync path
    ├── InvalidUIRequest (ValueError) ....... uncut.ui_request: not a chat request the AI SDK sends
    ├── StreamNotFound (LookupError) ........ uncut.streams: no such stream here (404)
    ├── StreamRefused ....................... uncut.streams: not admitted (503 / 429)
    ├── StreamAborted (RuntimeError) ........ uncut.relay: ends a plain-text body without its end
    ├── LogClosedError (RuntimeError) ....... uncut.eventlog: an event after the terminal one
    ├── StoreUnavailable (RuntimeError) ..... uncut.eventlog: the shared store cannot be reached
    ├── ScriptedModelError (RuntimeError) ... uncut.scripted: the failure a script asked for
    ├── ThreadError ......................... uncut.threads: a thread request refused (its ``code``)
    │   ├── NothingToResume ................. 409 nothing_to_resume
    │   ├── Interrupted ..................... 409 interrupted
    │   ├── InvalidResume ................... 400 invalid_resume
    │   ├── ThreadBusy ...................... 409 thread_busy
    │   └── InvalidThread ................... 400 invalid_thread
    └── ProtocolError ....................... uncut.agent_server.wire: an Agent Server request refused
        └── MethodNotAllowed ................ uncut.agent_server.server: 405

Two ``BaseException`` subclasses are control-flow signals, not errors, so
that no ``except Exception`` in a model or tool swallows them:
``StreamCancelled`` (uncut.callbacks) stops a cancelled stream inside the
model's callbacks, ``Stalled`` (uncut.stall) makes a silent model call again.

Errors on the wire
------------------

A stream that fails ends with one terminal ``error`` event,
``{"error": {"type", "message", "retryable"}}``; a refused request gets
the same shape as its JSON body (OpenAI's ``{"message", "type", "param",
"code"}`` on the ``/v1`` surfaces). ``ERROR_TYPES`` lists every ``type``
with what it means; the bodies below are the only ones the library builds.

Outcomes
--------

``OUTCOMES``: how a response (its ``stream_summary`` line and the
``streams_finished`` metric) or a run can end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uncut.admission import Refusal

__all__ = [
    "ABANDONED",
    "BETWEEN_CHUNKS_STALL",
    "CANCELLED",
    "CLIENT_DISCONNECTED",
    "CLIENT_LIMIT",
    "ERROR_TYPES",
    "FIRST_CHUNK_STALL",
    "OUTCOMES",
    "OUTCOME_OF_ERROR",
    "OVERLOADED",
    "PRODUCER_LOST",
    "RATE_LIMITED",
    "READER_LIMIT",
    "SERVER_ERROR",
    "SERVER_SHUTDOWN",
    "STORE_UNAVAILABLE",
    "THREAD_LEASE_LOST",
    "TIMEOUT",
    "TOO_LARGE",
    "UPSTREAM_ERROR",
    "UPSTREAM_REJECTED",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_UNAVAILABLE",
    "AsyncCallbackError",
    "Interrupted",
    "InvalidResume",
    "InvalidThread",
    "InvalidUIRequest",
    "LogClosedError",
    "NothingToResume",
    "OptionError",
    "ProtocolError",
    "ScriptedModelError",
    "StoreUnavailable",
    "StreamAborted",
    "StreamNotFound",
    "StreamRefused",
    "ThreadBusy",
    "ThreadError",
    "UncutError",
    "error",
    "error_body",
]


# -- exceptions ---------------------------------------------------------------------------------


class UncutError(Exception):
    """The base of every error uncut raises."""


class OptionError(UncutError, ValueError):
    """An option outside what it accepts; ``rule`` says what it accepts."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        super().__init__(f"{name}={value!r}: {rule}")
        self.name = name
        self.value = value
        self.rule = rule


class AsyncCallbackError(UncutError, TypeError):
    """An async callback handler was given to the synchronous streaming path."""


class InvalidUIRequest(UncutError, ValueError):
    """The body is JSON but not a chat request the AI SDK would send; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StreamNotFound(UncutError, LookupError):
    """No such stream here: unknown, expired, (memory store) kept by another worker, or someone else's."""


class StreamRefused(UncutError):
    """No run (or reader) was admitted: the worker is full (503) or the client holds its share (429)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal

    @property
    def retry_after(self) -> int:
        """Whole seconds, as ``Retry-After`` says it."""
        return max(1, math.ceil(self.refusal.retry_after))

    def headers(self) -> list[tuple[str, str]]:
        """``Retry-After``, ``retry-after-ms`` and ``x-should-retry`` (uncut.admission)."""
        return self.refusal.headers()

    def body(self, surface: str = "sse") -> bytes:
        """The JSON error body; OpenAI's shape on the /v1 surfaces."""
        return self.refusal.body(surface in ("openai", "responses"))


class StreamAborted(UncutError, RuntimeError):
    """Raised into the WSGI server so a plain-text response ends without its terminator."""


class LogClosedError(UncutError, RuntimeError):
    """An event was appended after the terminal one."""


class StoreUnavailable(UncutError, RuntimeError):
    """The shared event store cannot be reached; the stream cannot continue safely."""


class ScriptedModelError(UncutError, RuntimeError):
    """The failure a script asked for (``fail_at``)."""


class ThreadError(UncutError):
    """A thread request refused before anything ran; ``status`` and ``code`` are what the client gets."""

    status = 400
    code = "thread_error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.code, "message": self.message, **self.detail}}


class NothingToResume(ThreadError):
    status, code = 409, "nothing_to_resume"


class Interrupted(ThreadError):
    status, code = 409, "interrupted"


class InvalidResume(ThreadError):
    status, code = 400, "invalid_resume"


class ThreadBusy(ThreadError):
    status, code = 409, "thread_busy"


class InvalidThread(ThreadError):
    status, code = 400, "invalid_thread"


class ProtocolError(UncutError):
    """An Agent Server request refused before anything runs: ``status`` and the ``detail`` the client reads."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


# -- errors on the wire ------------------------------------------------------------------------------

# Refusals (uncut.admission): a JSON 503 or 429 before anything runs.
OVERLOADED = "overloaded"  # the worker is full: 503, retry (here later, or elsewhere)
CLIENT_LIMIT = "too_many_streams"  # this client holds its share: 429
READER_LIMIT = "too_many_readers"  # this client holds its share of resume readers: 429

# Every error type the library puts on the wire, and what it means.
ERROR_TYPES: dict[str, str] = {
    # a stream's terminal error event (and a non-streaming answer's error body)
    "cancelled": "the run was cancelled (a DELETE, a client gone under disconnect_policy=cancel, or nobody reading)",
    "timeout": "the stream reached max_stream_seconds",
    "too_large": "the stream reached its event or byte budget",
    "server_shutdown": "the worker is restarting; retry to continue (elsewhere)",
    "store_unavailable": "the shared stream store (Redis) stayed unreachable past its retry bound",
    "producer_lost": "the worker producing the stream died; retry to start again",
    "server_error": "the server failed while sending the stream",
    "thread_lease_lost": "the thread's lease passed to another run while this one ran",
    "rate_limited": "the model provider is rate limiting requests",
    "upstream_timeout": "the model provider did not answer in time (or went silent past the stall limits)",
    "upstream_unavailable": "the connection to the model provider failed",
    "upstream_rejected": "the model provider rejected the request (its 4xx)",
    "upstream_error": "the model provider failed while answering",
    "client_disconnected": "the client left before a non-streaming answer was complete",
    # refusals before anything runs
    OVERLOADED: "503: too many open streams on this worker; retry after Retry-After",
    CLIENT_LIMIT: "429: this client holds as many open streams as one client may",
    READER_LIMIT: "429: this client holds as many resume readers as one client may",
    # thread requests refused (uncut.threads: ThreadError.code)
    ThreadError.code: "400: a thread request refused",
    NothingToResume.code: "409: a resume for a thread with no pending interrupt",
    Interrupted.code: "409: a new message for a thread waiting on an interrupt's answer",
    InvalidResume.code: "400: a resume value the pending interrupt does not accept",
    ThreadBusy.code: "409: another run holds the thread",
    InvalidThread.code: "400: a thread id, or a thread request, that is not valid (input and resume both or neither)",
}


def error(kind: str, message: str, retryable: bool) -> dict[str, Any]:
    """An error body, ``{"error": {"type", "message", "retryable"}}``; ``kind`` must be in ``ERROR_TYPES``."""
    if kind not in ERROR_TYPES:
        raise ValueError(f"unknown error type {kind!r}: list it in uncut.errors.ERROR_TYPES")
    return {"error": {"type": kind, "message": message, "retryable": retryable}}


CANCELLED = error("cancelled", "The stream was cancelled.", False)
ABANDONED = error("cancelled", "Nobody was reading the stream.", False)
TIMEOUT = error("timeout", "The stream reached its maximum duration.", False)
TOO_LARGE = error("too_large", "The stream reached its maximum size.", False)
SERVER_SHUTDOWN = error("server_shutdown", "The server is restarting; retry to continue.", True)
STORE_UNAVAILABLE = error("store_unavailable", "The stream store is unavailable.", True)
PRODUCER_LOST = error("producer_lost", "The server producing this stream stopped; retry to start again.", True)
SERVER_ERROR = error("server_error", "The server failed while sending the stream.", True)
THREAD_LEASE_LOST = error("thread_lease_lost", "the thread's lease passed to another run", False)
RATE_LIMITED = error("rate_limited", "The model provider is rate limiting requests.", True)
UPSTREAM_TIMEOUT = error("upstream_timeout", "The model provider did not answer in time.", True)
FIRST_CHUNK_STALL = error("upstream_timeout", "The model provider did not start answering in time.", True)
BETWEEN_CHUNKS_STALL = error("upstream_timeout", "The model provider stopped sending mid-answer.", True)
UPSTREAM_UNAVAILABLE = error("upstream_unavailable", "The connection to the model provider failed.", True)
UPSTREAM_REJECTED = error("upstream_rejected", "The model provider rejected the request.", False)
UPSTREAM_ERROR = error("upstream_error", "The model provider failed while answering.", True)
CLIENT_DISCONNECTED = error("client_disconnected", "The client left before the answer was complete.", False)


def error_body(exc: BaseException) -> dict[str, Any]:
    """What the client is told about a failure: a type, a safe message, and whether to retry."""
    # By class name through the MRO, so provider wrappers (langchain_openai's
    # OpenAIConnectionError is an openai.APIConnectionError) classify as their bases.
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    if "StoreUnavailable" in names:
        body = STORE_UNAVAILABLE
    elif "RateLimitError" in names or status == 429:
        body = RATE_LIMITED
    elif names & {"APITimeoutError", "ReadTimeout", "TimeoutError", "Timeout"}:
        body = UPSTREAM_TIMEOUT
    elif names & {"APIConnectionError", "RemoteProtocolError", "ConnectError", "ConnectionError"}:
        body = UPSTREAM_UNAVAILABLE
    elif isinstance(status, int) and 400 <= status < 500:
        body = UPSTREAM_REJECTED
    else:
        body = UPSTREAM_ERROR
    return {"error": dict(body["error"])}


# -- outcomes ----------------------------------------------------------------------------------------

# How a response can end (its summary's "outcome", the streams_finished metric's label), and a run.
OUTCOMES: dict[str, str] = {
    "completed": "the stream ended with its end event, and the client has it",
    "client_disconnected": "the client closed its connection before the end",
    "slow_client": "the client stopped reading: a write stayed blocked past the write timeout",
    "upstream_error": "the model provider (or the graph) failed; the error event says how",
    "timeout": "the stream reached max_stream_seconds",
    "server_shutdown": "the worker was restarting: the stream ended with server_shutdown (or moved to another worker)",
    "cancelled": "the run was cancelled (a DELETE, or the client left under disconnect_policy=cancel)",
    "store_unavailable": "the shared stream store stayed unreachable past its retry bound",
    "server_error": "the server failed while sending the stream",
    "too_large": "the stream reached its event or byte budget",
    "producer_lost": "the worker producing a resumed stream died",
    "rejected": "the request was refused before anything ran (503 or 429)",
    "abandoned": "a run's own outcome (not a response's): nobody read it past resume_grace_seconds, so it was cancelled",
}

# A terminal error event's type -> the outcome of the response that sent it (any other type: upstream_error).
OUTCOME_OF_ERROR: dict[str, str] = {
    "timeout": "timeout",
    "server_shutdown": "server_shutdown",
    "cancelled": "cancelled",
    "store_unavailable": "store_unavailable",
    "too_large": "too_large",
    "server_error": "server_error",
    "producer_lost": "producer_lost",
}
