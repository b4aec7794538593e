"""Every streaming option, its default and its range, written once.

``StreamOptions`` is built with keywords only and checks itself; every
adapter and the service read it (the service's own environment variables
go through the same ranges, so a value one accepts the other accepts
too). ``parse_bool`` is the one way a setting's text becomes a boolean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypedDict

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables import RunnableConfig

from uncut.errors import OptionError

__all__ = ["DISCONNECT_POLICIES", "RANGES", "OptionError", "Range", "StreamArgs", "StreamOptions", "parse_bool"]

DISCONNECT_POLICIES = ("continue", "cancel")
MiB = 1_048_576

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: Any) -> bool:
    """A boolean from a bool or from text: true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be one of true/false, yes/no, on/off, 1/0")


@dataclass(frozen=True)
class Range:
    """The numbers an option accepts: ``low`` to ``high``, whole or not, and maybe None."""

    low: float
    high: float
    integer: bool = False
    optional: bool = False  # None is accepted (no bound)
    note: str = ""

    def rule(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"must be {kind} from {self.low:g} to {self.high:g}{self.note}" + (", or None" if self.optional else "")

    def parse(self, raw: Any) -> float | int:
        """Text or a number to this range's type; raises ValueError with the rule."""
        if isinstance(raw, bool):
            raise ValueError(self.rule())
        try:
            value: float | int = int(raw) if self.integer and not isinstance(raw, float) else float(raw)
        except (TypeError, ValueError):
            raise ValueError(self.rule()) from None
        if self.integer and value != int(value):
            raise ValueError(self.rule())
        self.check(value)
        return int(value) if self.integer else value

    def check(self, value: float | int) -> None:
        if isinstance(value, float) and not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(self.rule())


RANGES: dict[str, Range] = {
    "heartbeat_seconds": Range(0, 300, note=" (0 turns heartbeats off: unsafe, for negative controls)"),
    "retry_ms": Range(0, 600_000, integer=True),
    "max_stream_seconds": Range(0.001, 86_400, optional=True),
    "send_timeout_seconds": Range(0, 3600, optional=True, note=" (0 turns it off)"),
    "send_buffer_bytes": Range(0, 16 * MiB, integer=True, note=" (0 keeps the kernel's autotuning)"),
    "max_stream_events": Range(10, 10_000_000, integer=True, optional=True),
    "max_stream_bytes": Range(1024, 1024 * MiB, integer=True, optional=True),
    "resume_grace_seconds": Range(0, 3600),
    "max_concurrent_streams": Range(0, 1_000_000, integer=True, note=" (0 for no limit)"),
    "max_streams_per_client": Range(0, 1_000_000, integer=True, note=" (0 for no limit)"),
    "max_concurrent_readers": Range(0, 1_000_000, integer=True, optional=True, note=" (0 for no limit; None: as many as streams)"),
    "max_readers_per_client": Range(0, 1_000_000, integer=True, optional=True, note=" (0 for no limit; None: twice the streams)"),
    "admission_target_lag_ms": Range(1, 10_000, integer=True),
    "admission_start_budget_ms": Range(0, 60_000, integer=True, note=" (0: no line, refused at once with the fixed Retry-After)"),
    "first_chunk_timeout_seconds": Range(0, 86_400, note=" (0 turns it off)"),
    "between_chunks_timeout_seconds": Range(0, 86_400, note=" (0 turns it off)"),
}
BOOLEANS = ("watch_disconnect", "shutdown_notice", "heartbeat_events", "adaptive_admission")


@dataclass(frozen=True, kw_only=True)
class StreamOptions:
    """How streams are served. The defaults are the library's; the service changes a few (docs/configuration.md).

    - ``heartbeat_seconds``: a comment (or ``heartbeat_events``: an event
      with no id) after this long with nothing sent; 0 turns them off.
    - ``retry_ms``: the SSE ``retry:`` a client waits before reconnecting.
    - ``max_stream_seconds``: a run still going this long after it started
      ends with a ``timeout`` error event, however its readers reconnect.
    - ``watch_disconnect``: notice a client that closed its socket at once.
    - ``shutdown_notice``: end streams with a retryable ``server_shutdown``
      before a draining gunicorn worker would cut them.
    - ``send_timeout_seconds`` / ``send_buffer_bytes``: a client that takes
      no bytes this long is dropped; at most this much waits in the kernel.
    - ``max_stream_events`` / ``max_stream_bytes``: a run's log beyond
      either ends with a ``too_large`` error event.
    - ``on_disconnect``: when the last reader leaves, ``cancel`` the run,
      or ``continue`` it for ``resume_grace_seconds`` so a reconnect finds it.
    - ``max_concurrent_streams`` / ``max_streams_per_client``: runs per
      process, and per client; 0 for no limit.
    - ``max_concurrent_readers`` / ``max_readers_per_client``: resume
      readers (``follow``, ``follow_chat``) per process, and per client;
      0 for no limit; None (the default): as many as runs per process,
      and twice the runs per client.
    - ``adaptive_admission``: under gevent, also hold runs to what the
      event loop keeps up with: the limit falls while the loop lags more
      than ``admission_target_lag_ms`` (uncut.adaptive).
    - ``admission_start_budget_ms``: past the limit, a new run waits its
      turn when it is expected to start within this; beyond, it is
      refused (``503``) with a ``Retry-After`` naming when its turn comes,
      and its place is kept for it (uncut.admission). 250 ms: measured,
      a short line and an exact ``Retry-After`` answered every client of a
      4x overload with more goodput and a lower TTFT than a 1 s line (a
      request in line holds a connection and a greenlet in the very loop
      every stream shares; a client told when to come back holds nothing).
      0: refused at once, ``Retry-After`` from ``retry_ms``.
    - ``first_chunk_timeout_seconds`` / ``between_chunks_timeout_seconds``:
      a model silent this long before its first output, or between two
      chunks after it, ends the run with a retryable ``upstream_timeout``
      error event; a call silent before any output is first made again,
      once (uncut.stall). 0 turns a limit off. 120 s: reasoning models
      think before they show anything, and twice that (the retry) still
      fits the 300 s run deadline. 60 s: mid-answer, providers send many
      chunks a second, and their longest quiet spells (a provider-side
      tool such as a web search) stay well under a minute.
    """

    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000
    max_stream_seconds: float | None = 300.0
    watch_disconnect: bool = True
    shutdown_notice: bool = True
    send_timeout_seconds: float | None = 30.0
    send_buffer_bytes: int = 65_536
    heartbeat_events: bool = False
    max_stream_events: int | None = 50_000
    max_stream_bytes: int | None = 8 * MiB
    on_disconnect: str = "cancel"
    resume_grace_seconds: float = 15.0
    max_concurrent_streams: int = 0
    max_streams_per_client: int = 0
    max_concurrent_readers: int | None = None
    max_readers_per_client: int | None = None
    adaptive_admission: bool = True
    admission_target_lag_ms: int = 100
    admission_start_budget_ms: int = 250
    first_chunk_timeout_seconds: float = 120.0
    between_chunks_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            if value is None and allowed.optional:
                continue
            try:
                if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(allowed.rule())
                if allowed.integer and value != int(value):
                    raise ValueError(allowed.rule())
                allowed.check(value)
            except ValueError as exc:
                raise OptionError(name, value, str(exc)) from None
        for name in BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, getattr(self, name), "must be True or False")
        if self.on_disconnect not in DISCONNECT_POLICIES:
            raise OptionError("on_disconnect", self.on_disconnect, f"must be one of {', '.join(DISCONNECT_POLICIES)}")

    def reader_limits(self) -> tuple[int, int]:
        """Resume readers per process and per client: what the options say, or what they follow from."""
        per_process = self.max_concurrent_streams if self.max_concurrent_readers is None else self.max_concurrent_readers
        per_client = 2 * self.max_streams_per_client if self.max_readers_per_client is None else self.max_readers_per_client
        return per_process, per_client

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, name: str, raw: Any) -> Any:
        """One option from text (a config file, an environment variable) to its type; raises OptionError."""
        try:
            if name in RANGES:
                allowed = RANGES[name]
                if allowed.optional and (raw is None or str(raw).strip().lower() in ("none", "")):
                    return None
                return allowed.parse(raw)
            if name in BOOLEANS:
                return parse_bool(raw)
            if name == "on_disconnect":
                value = str(raw).strip().lower()
                if value not in DISCONNECT_POLICIES:
                    raise ValueError(f"must be one of {', '.join(DISCONNECT_POLICIES)}")
                return value
        except ValueError as exc:
            raise OptionError(name, raw, str(exc)) from None
        raise OptionError(name, raw, f"is not an option; the options are {', '.join(cls.names())}")

    @classmethod
    def from_mapping(cls, base: "StreamOptions", values: Mapping[str, Any], *, prefix: str = "") -> "StreamOptions":
        """``base`` with the options ``values`` names (as ``prefix`` + NAME in capitals), parsed and checked.

        Flask's ``app.config`` uses the prefix ``UNCUT_``; Django's
        ``settings.UNCUT`` dict, none. An unknown key with the prefix is an
        error, so a typo does not silently keep a default.
        """
        chosen: dict[str, Any] = {}
        wanted = {prefix + name.upper(): name for name in cls.names()}
        for key, raw in values.items():
            if not isinstance(key, str) or not key.startswith(prefix):
                continue
            if key not in wanted:
                raise OptionError(key, raw, f"is not an option; the options are {', '.join(wanted)}")
            try:
                chosen[wanted[key]] = cls.parse(wanted[key], raw)
            except OptionError as exc:
                raise OptionError(key, raw, exc.rule) from None
        try:
            return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **chosen})
        except OptionError as exc:
            raise OptionError(prefix + exc.name.upper(), exc.value, exc.rule) from None


class StreamArgs(TypedDict, total=False):
    """The keywords every adapter's run function takes (``uncut.flask``, ``uncut.django``, ``uncut.wsgi``), written once.

    - ``callbacks``: handlers for this run only, wrapped so they cannot cut
      it; async handlers are refused before the first byte.
    - ``config``: the runnable's ``RunnableConfig`` (tags, run name...).
    - ``metadata``: fields added to the ``start`` event and the summary.
    - ``owner``: who may follow or cancel the run later (Flask: default the
      ``Streaming`` extension's ``owner()``; elsewhere: nobody in particular).
    - ``client``: whose share of admission the run takes (Flask: default the
      extension's ``client()``; elsewhere: the peer address).
    - every ``StreamOptions`` field, overriding the app's for this run.

    Each adapter spells it ``**args: Unpack[StreamArgs]``, so a type checker
    checks a call's keywords and a new one is added here alone.
    """

    callbacks: Sequence[BaseCallbackHandler]
    config: RunnableConfig | None
    metadata: Mapping[str, Any] | None
    owner: str | None
    client: str | None
    heartbeat_seconds: float
    retry_ms: int
    max_stream_seconds: float | None
    watch_disconnect: bool
    shutdown_notice: bool
    send_timeout_seconds: float | None
    send_buffer_bytes: int
    heartbeat_events: bool
    max_stream_events: int | None
    max_stream_bytes: int | None
    on_disconnect: str
    resume_grace_seconds: float
    max_concurrent_streams: int
    max_streams_per_client: int
    max_concurrent_readers: int | None
    max_readers_per_client: int | None
    adaptive_admission: bool
    admission_target_lag_ms: int
    admission_start_budget_ms: int
    first_chunk_timeout_seconds: float
    between_chunks_timeout_seconds: float


RUN_ARGS = ("callbacks", "config", "metadata", "owner", "client")  # StreamArgs' keys that are not StreamOptions fields
