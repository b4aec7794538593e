"""Typed settings, read once from the environment and validated at start-up.

This is the only module that knows the names of the environment variables.
A bad value raises ``ConfigError`` naming the variable and what it accepts,
so a misconfigured deploy stops at boot instead of cutting streams later.
Imports nothing from Flask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from uncut.options import DISCONNECT_POLICIES, RANGES, StreamOptions, parse_bool
from uncut.redis_config import STORE_RETRY_SECONDS, masked, parse_store_url

DEFAULTS = StreamOptions()  # the library's defaults: the service changes only what it says it changes

PROVIDERS = ("scripted", "openai")
METRICS_SINKS = ("prometheus", "otel", "both")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _number(name: str, raw: str, low: float, high: float, *, integer: bool, hint: str = "") -> float | int:
    kind = "a whole number" if integer else "a number"
    accepted = f"must be {kind} from {low:g} to {high:g}{hint}"
    try:
        value: float | int = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: {accepted}") from None
    if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: {accepted}")
    return value


def _bool(name: str, raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: {exc}") from None


def _option(option: str, *, low: float | None = None) -> Callable[[str, str], Any]:
    """A streaming option's parser: its type and range are StreamOptions', so the two cannot disagree."""
    allowed = RANGES[option]

    def parse(name: str, raw: str) -> Any:
        try:
            value = allowed.parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None
        if low is not None and value < low:
            raise ConfigError(f"{name}={raw!r}: must be at least {low:g}")
        return value

    return parse


def _choice(name: str, raw: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r}: must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Setting:
    """How one environment variable becomes one typed field."""

    env: str
    parse: Callable[[str, str], Any]
    doc: str


def _int(low: int, high: int, hint: str = "") -> Callable[[str, str], Any]:
    return lambda name, raw: _number(name, raw, low, high, integer=True, hint=hint)


def _float(low: float, high: float, hint: str = "") -> Callable[[str, str], Any]:
    return lambda name, raw: _number(name, raw, low, high, integer=False, hint=hint)


def _keys(name: str, candidates: list[str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in candidates if k.strip() and not k.strip().startswith("#"))
    for key in keys:
        if len(key) < 16 or any(c.isspace() or not c.isprintable() for c in key):
            raise ConfigError(f"{name}: every key must be at least 16 printable characters without spaces")
    if not keys:
        raise ConfigError(f"{name}: no keys found")
    return keys


def _store_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value.lower() == "memory":
        return "memory"
    try:
        parse_store_url(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={exc} (or memory)") from None
    return value


def _thread_store_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value.startswith("sqlite:///") or value.startswith(("postgresql://", "postgres://")):
        return value
    raise ConfigError(f"{name}: must be sqlite:///<path> or postgresql://user:password@host/db")


def _header(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or any(not (c.isalnum() or c == "-") for c in value):
        raise ConfigError(f"{name}={raw!r}: must be a header name such as X-Forwarded-For")
    return value


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not (origin.startswith(("http://", "https://")) and "/" not in origin.split("://", 1)[1]):
            raise ConfigError(f"{name}: {origin!r} must be * or a scheme and host, like https://app.example.com")
    return origins


def _text(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{name}: must not be empty when set")
    return value


@dataclass(frozen=True)
class Settings:
    """Every knob of the service, with its safe default."""

    provider: str = "scripted"
    model: str = "scripted"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    heartbeat_seconds: float = DEFAULTS.heartbeat_seconds
    retry_ms: int = DEFAULTS.retry_ms
    max_stream_seconds: float = DEFAULTS.max_stream_seconds or 300.0
    watch_disconnect: bool = DEFAULTS.watch_disconnect
    shutdown_notice: bool = DEFAULTS.shutdown_notice
    max_body_bytes: int = 1_048_576
    max_messages: int = 100
    max_message_chars: int = 32_000
    max_tokens: int = 4096
    max_concurrent_streams: int = 1000  # the service's: the library's default is no limit
    max_streams_per_key: int = 250  # the service's: a quarter of the worker, so no one client takes it all
    max_concurrent_readers: int | None = DEFAULTS.max_concurrent_readers  # None: as many as streams
    max_readers_per_key: int | None = DEFAULTS.max_readers_per_client  # None: twice the streams per key
    adaptive_admission: bool = DEFAULTS.adaptive_admission
    admission_target_lag_ms: int = DEFAULTS.admission_target_lag_ms
    admission_start_budget_ms: int = DEFAULTS.admission_start_budget_ms
    admission_gate: bool = True
    client_address_header: str | None = None
    max_stream_events: int = DEFAULTS.max_stream_events or 50_000
    max_stream_bytes: int = DEFAULTS.max_stream_bytes or 8 * 1_048_576
    body_timeout_seconds: float = 10.0
    send_timeout_seconds: float = DEFAULTS.send_timeout_seconds or 30.0
    send_buffer_bytes: int = DEFAULTS.send_buffer_bytes
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys_file: str | None = None
    stream_store: str = field(default="memory", repr=False)
    stream_store_reseed: bool = True
    stream_store_retry_seconds: float = STORE_RETRY_SECONDS
    stream_ttl_seconds: float = 300.0
    thread_store: str = field(default="sqlite:///var/threads.db", repr=False)  # relative to the working directory
    thread_ttl_seconds: float = 30 * 86_400.0
    max_threads_per_key: int = 1000
    thread_lease_seconds: float = 10.0
    thread_store_pool_size: int = 10
    memory_store_max_events: int = 500_000
    memory_store_max_bytes: int = 256 * 1_048_576
    on_disconnect: str = "continue"  # the service's: it can resume streams (the library cancels)
    resume_grace_seconds: float = DEFAULTS.resume_grace_seconds
    upstream_timeout_seconds: float = 600.0
    first_chunk_timeout_seconds: float = DEFAULTS.first_chunk_timeout_seconds
    between_chunks_timeout_seconds: float = DEFAULTS.between_chunks_timeout_seconds
    upstream_max_retries: int = 2
    upstream_max_connections: int = 10_000
    upstream_raw_chunks: bool = True
    diagnostics: bool = True
    cors_origins: tuple[str, ...] = ()
    scripted_ttft_ms: int = 300
    agent_slow_tool_seconds: float = 3.0
    scripted_interval_ms: int = 40
    scripted_reasoning: bool = False
    allow_sync_worker: bool = False
    log_format: str = "json"
    log_level: str = "INFO"
    otel: bool = False
    metrics: str = "prometheus"

    def setting_name(self, option: str) -> str:
        """The environment variable that sets ``option`` (the doctor's messages name it)."""
        return SETTINGS[option].env

    @property
    def heartbeats_enabled(self) -> bool:
        return self.heartbeat_seconds > 0

    def stream_options(self) -> dict[str, Any]:
        """The settings the library takes, as ``StreamOptions`` keywords."""
        return {
            "heartbeat_seconds": self.heartbeat_seconds,
            "retry_ms": self.retry_ms,
            "max_stream_seconds": self.max_stream_seconds,
            "watch_disconnect": self.watch_disconnect,
            "shutdown_notice": self.shutdown_notice,
            "send_timeout_seconds": self.send_timeout_seconds,
            "send_buffer_bytes": self.send_buffer_bytes,
            "max_stream_events": self.max_stream_events,
            "max_stream_bytes": self.max_stream_bytes,
            "on_disconnect": self.on_disconnect,
            "resume_grace_seconds": self.resume_grace_seconds,
            "max_concurrent_streams": self.max_concurrent_streams,
            "max_streams_per_client": self.max_streams_per_key,
            "max_concurrent_readers": self.max_concurrent_readers,
            "max_readers_per_client": self.max_readers_per_key,
            "adaptive_admission": self.adaptive_admission,
            "admission_target_lag_ms": self.admission_target_lag_ms,
            "admission_start_budget_ms": self.admission_start_budget_ms,
            "first_chunk_timeout_seconds": self.first_chunk_timeout_seconds,
            "between_chunks_timeout_seconds": self.between_chunks_timeout_seconds,
        }


# Field name -> environment variable, parser and its description: the only wording of docs/configuration.md's table
# (generated by docs/hooks/settings_table.py; tests/unit/test_docs.py fails when the page and this disagree).
SETTINGS: dict[str, Setting] = {
    "provider": Setting(
        "WEBAPP_PROVIDER",
        lambda n, r: _choice(n, r, PROVIDERS),
        "`scripted` (embedded, no network) or `openai`. Default: `openai` if `OPENAI_API_KEY` is set, else `scripted`.",
    ),
    "model": Setting(
        "WEBAPP_MODEL",
        _text,
        f"Model name sent to the provider. Default: `scripted`, or `{DEFAULT_OPENAI_MODEL}` with `WEBAPP_PROVIDER=openai`.",
    ),
    "openai_api_key": Setting("OPENAI_API_KEY", _text, "Key for the openai provider. Never logged."),
    "openai_base_url": Setting(
        "OPENAI_BASE_URL", _text, "Any OpenAI-compatible server, e.g. `http://127.0.0.1:9000/v1`. Unset: OpenAI's own API."
    ),
    "heartbeat_seconds": Setting(
        "WEBAPP_HEARTBEAT_SECONDS",
        _option("heartbeat_seconds"),
        "An SSE comment is sent when nothing was sent for this long. Keep it below every idle timeout in front "
        "of the app. `0` turns heartbeats off: unsafe, kept for negative controls.",
    ),
    "retry_ms": Setting("WEBAPP_RETRY_MS", _option("retry_ms"), "The SSE `retry:` reconnect delay advertised to clients."),
    "max_stream_seconds": Setting(
        "WEBAPP_MAX_STREAM_SECONDS",
        _option("max_stream_seconds"),
        "A stream still running after this long ends with an explicit `error` event of type `timeout`.",
    ),
    "watch_disconnect": Setting(
        "WEBAPP_WATCH_DISCONNECT",
        _bool,
        "Watch the client socket for EOF so a dropped client cancels the upstream call within about a second, "
        "even during a long model pause.",
    ),
    "shutdown_notice": Setting(
        "WEBAPP_SHUTDOWN_NOTICE",
        _bool,
        "When gunicorn drains a worker (SIGTERM, SIGHUP) and a stream cannot finish within `graceful_timeout`, end"
        " it with a retryable `server_shutdown` error event shortly before the cut, instead of a silent cut. Needs"
        " the `post_worker_init` hook of `conf/gunicorn.conf.py`.",
    ),
    "max_body_bytes": Setting("WEBAPP_MAX_BODY_BYTES", _int(1024, 64 * 1_048_576), "Larger request bodies get `413`."),
    "max_messages": Setting("WEBAPP_MAX_MESSAGES", _int(1, 10_000), "Most messages accepted in one request."),
    "max_message_chars": Setting("WEBAPP_MAX_MESSAGE_CHARS", _int(1, 10_000_000), "Longest message content accepted, in characters."),
    "max_tokens": Setting(
        "WEBAPP_MAX_TOKENS", _int(1, 1_000_000), "Ceiling on a request's `max_tokens` / `max_completion_tokens` (`/v1`); above it: `400`."
    ),
    "max_concurrent_streams": Setting(
        "WEBAPP_MAX_CONCURRENT_STREAMS",
        _option("max_concurrent_streams"),
        "Runs per worker process. A run holds its slot from its start to its end, across reconnects and the"
        " resume grace, whatever started it (`POST /api/streams` included). One more waits its turn or gets"
        " `503` with `Retry-After` (`WEBAPP_ADMISSION_START_BUDGET_MS`), never a hang. `0`: no limit.",
    ),
    "max_streams_per_key": Setting(
        "WEBAPP_MAX_STREAMS_PER_KEY",
        _option("max_streams_per_client"),
        "Runs one API key may have going per worker (with keys off: one client address). One more gets `429` "
        "with `Retry-After`. `0`: no per-client limit. Non-streaming answers are runs too.",
    ),
    "max_concurrent_readers": Setting(
        "WEBAPP_MAX_CONCURRENT_READERS",
        _option("max_concurrent_readers"),
        "Resume readers per worker; one more gets `503 overloaded` with `Retry-After`. With the defaults "
        "runs and readers stay within gunicorn's 2000 `worker_connections`. `0`: no limit. Default: "
        "`WEBAPP_MAX_CONCURRENT_STREAMS` (`1000`).",
    ),
    "max_readers_per_key": Setting(
        "WEBAPP_MAX_READERS_PER_KEY",
        _option("max_readers_per_client"),
        "Resume readers (`Last-Event-ID`, `GET /api/streams/<id>/events`, the AI SDK's resume) one API key "
        "(with keys off: one client address) may have open per worker. One more gets `429 too_many_readers` "
        "with `Retry-After`. `0`: no limit. Default: twice `WEBAPP_MAX_STREAMS_PER_KEY` (`500`).",
    ),
    "adaptive_admission": Setting(
        "WEBAPP_ADAPTIVE_ADMISSION",
        _bool,
        "Under gevent, hold a worker to the streams its event loop keeps up with: while the loop lags more than"
        " `WEBAPP_ADMISSION_TARGET_LAG_MS` the limit falls (never above `WEBAPP_MAX_CONCURRENT_STREAMS`), and "
        "new streams beyond it get `503` with `Retry-After` at once. `false`: the fixed limit only.",
    ),
    "admission_target_lag_ms": Setting(
        "WEBAPP_ADMISSION_TARGET_LAG_MS", _option("admission_target_lag_ms"), "The event-loop lag adaptive admission holds a worker under."
    ),
    "admission_start_budget_ms": Setting(
        "WEBAPP_ADMISSION_START_BUDGET_MS",
        _option("admission_start_budget_ms"),
        "Past a worker's limit, a new stream waits its turn when it is expected to start within this "
        "(from measured throughput); beyond, `503` with `Retry-After` and `retry-after-ms` naming when "
        "its turn comes, and its place is kept for it when it comes back then. `0`: no line, refused at "
        "once with `Retry-After` from `WEBAPP_RETRY_MS`.",
    ),
    "admission_gate": Setting(
        "WEBAPP_ADMISSION_GATE",
        _bool,
        "Decide admission in WSGI middleware, before Flask builds the request: a refusal costs the worker a "
        "fraction of the CPU (bench/REFUSALS.md). `false`: decide in the view (the negative control).",
    ),
    "client_address_header": Setting(
        "WEBAPP_CLIENT_ADDRESS_HEADER",
        _header,
        "Behind a trusted proxy, the header that carries the client's address for the per-client limit "
        "(`X-Forwarded-For`: its last entry, the one your proxy added; or `X-Real-IP`). Unset: the peer "
        "address (behind a proxy, the proxy's: every client shares one limit). Never set it without a proxy "
        "that overwrites the header.",
    ),
    "max_stream_events": Setting(
        "WEBAPP_MAX_STREAM_EVENTS",
        _option("max_stream_events"),
        "A run whose log reaches this many events ends with an explicit `too_large` error event and stops the model.",
    ),
    "max_stream_bytes": Setting(
        "WEBAPP_MAX_STREAM_BYTES", _option("max_stream_bytes"), "...or this many bytes of events (text, arguments, tool results)."
    ),
    "body_timeout_seconds": Setting(
        "WEBAPP_BODY_TIMEOUT_SECONDS",
        _float(0, 600, " (0 turns it off)"),
        "A client that has not sent its whole request body this long after its headers gets `408` and its "
        "connection closed; gunicorn itself times only the headers. `0`: off.",
    ),
    "send_timeout_seconds": Setting(
        "WEBAPP_SEND_TIMEOUT_SECONDS",
        _option("send_timeout_seconds"),
        "A client that accepts no bytes for this long is dropped and its stream cancelled (`0`: off).",
    ),
    "send_buffer_bytes": Setting(
        "WEBAPP_SEND_BUFFER_BYTES",
        _option("send_buffer_bytes"),
        "Kernel send buffer per streaming socket, so a stalled client pins at most this much (`0`: kernel autotuning, up to 4 MiB).",
    ),
    "api_keys": Setting(
        "WEBAPP_API_KEYS",
        lambda n, r: _keys(n, r.split(",")),
        "Comma-separated keys (16+ printable characters each). When set, every route but `/healthz` needs `Authorization:"
        " Bearer <key>`; otherwise `401`. Compared in constant time, never logged.",
    ),
    "api_keys_file": Setting(
        "WEBAPP_API_KEYS_FILE", _text, "A file with one key per line (`#` comments), read at start-up; adds to `WEBAPP_API_KEYS`."
    ),
    "stream_store": Setting(
        "WEBAPP_STREAM_STORE",
        lambda n, r: _store_url(n, r),
        "Where stream events are kept for resuming: `memory` (one worker, or sticky sessions) or a Redis URL such as "
        "`redis://127.0.0.1:6379/0`, so any worker on any host can resume any stream. A Redis that does not answer "
        "stops start-up. Also `rediss://`, `unix://`, and `redis+sentinel://host:port[,host:port...]/<service>/<db>` "
        "for a Sentinel-managed Redis that fails over (the password in the URL is the primary's; masked in every "
        "message). Redis Cluster (`redis+cluster://`, or a server with `cluster_enabled:1`) is refused at start-up. "
        "Ship it with `conf/redis.conf` (AOF, `noeviction`). The service's keys and cancel channel start with "
        "`webapp:` (`webapp:stream:<id>`, `webapp:name:<name>`, `webapp:cancel`), as they always have: it builds "
        '`RedisStore(..., key_prefix="webapp:")`, so an upgrade keeps streams in flight and chat names (the '
        "library's default prefix is `uncut:`).",
    ),
    "stream_store_reseed": Setting(
        "WEBAPP_STREAM_STORE_RESEED",
        _bool,
        "With Redis: after a Redis restart (its data kept or lost) or a Sentinel failover, each producer "
        "writes back what Redis lacks of its streams, from its own copy, and the streams go on; readers "
        "elsewhere retry and wait for it. `false`: such a stream ends with `store_unavailable` at once.",
    ),
    "stream_store_retry_seconds": Setting(
        "WEBAPP_STREAM_STORE_RETRY_SECONDS",
        _float(0, 300),
        "With re-seeding: how long producers and readers retry a Redis that does not answer before the "
        "stream ends with `store_unavailable`. Keep a Sentinel failover (`down-after-milliseconds` plus"
        " 1-2 s) inside it.",
    ),
    "thread_store": Setting(
        "WEBAPP_THREAD_STORE",
        _thread_store_url,
        "Where threads (`/api/threads`) keep their checkpoints, owners and leases: SQLite (a path relative to the "
        "working directory; one host, any number of workers) or `postgresql://user:password@host/db` (any worker on "
        "any host; the password is masked in every message). A database that does not answer is `503 "
        "thread_store_unavailable` on the thread routes.",
    ),
    "thread_ttl_seconds": Setting(
        "WEBAPP_THREAD_TTL_SECONDS",
        _float(60, 10 * 365 * 86_400),
        "A thread not used for this long (30 days) is deleted with its checkpoints.",
    ),
    "max_threads_per_key": Setting(
        "WEBAPP_MAX_THREADS_PER_KEY",
        _int(0, 10_000_000),
        "Threads one key keeps (with keys off: everyone together); one more is `429 too_many_threads`. `0`: no limit.",
    ),
    "thread_lease_seconds": Setting(
        "WEBAPP_THREAD_LEASE_SECONDS",
        _float(1, 3600),
        "One run per thread: a worker killed mid-run leaves its thread `409 thread_busy` for at most this long.",
    ),
    "thread_store_pool_size": Setting(
        "WEBAPP_THREAD_STORE_POOL_SIZE",
        _int(1, 1000),
        "PostgreSQL: connections per worker process for checkpoints (and a quarter as many for the index).",
    ),
    "stream_ttl_seconds": Setting(
        "WEBAPP_STREAM_TTL_SECONDS", _float(1, 86_400), "How long a finished stream can still be resumed or replayed; then `404`."
    ),
    "memory_store_max_events": Setting(
        "WEBAPP_MEMORY_STORE_MAX_EVENTS",
        _int(1000, 100_000_000),
        "Bound on the memory store (and on Redis mode's local copies): beyond it the oldest finished streams are dropped first.",
    ),
    "memory_store_max_bytes": Setting(
        "WEBAPP_MEMORY_STORE_MAX_BYTES",
        _int(1_048_576, 64 * 1024 * 1_048_576),
        "The same bound in bytes of events. Running streams are never dropped; each is bounded by `WEBAPP_MAX_STREAM_BYTES`.",
    ),
    "on_disconnect": Setting(
        "WEBAPP_ON_DISCONNECT",
        lambda n, r: _choice(n, r, DISCONNECT_POLICIES),
        "When an SSE client leaves: `continue` generating for `WEBAPP_RESUME_GRACE_SECONDS` so a reconnect finds the"
        " stream (then cancel if nobody came back), or `cancel` the upstream call at once. Text and OpenAI streams, "
        "which cannot resume, always cancel.",
    ),
    "resume_grace_seconds": Setting(
        "WEBAPP_RESUME_GRACE_SECONDS", _option("resume_grace_seconds"), "With `continue`: how long a stream nobody reads keeps generating."
    ),
    "upstream_timeout_seconds": Setting(
        "WEBAPP_UPSTREAM_TIMEOUT_SECONDS", _float(1, 3600), "openai client timeout, which includes the longest silence between two chunks."
    ),
    "first_chunk_timeout_seconds": Setting(
        "WEBAPP_FIRST_CHUNK_TIMEOUT_SECONDS",
        _option("first_chunk_timeout_seconds"),
        "A model that sends nothing for this long before its first output (token, reasoning, tool "
        "call) is abandoned (its HTTP response closed) and called again, once, if the stream has sent "
        "nothing yet and runs on a gevent worker; silent again (or for an agent, or under threads), "
        "the stream ends with a retryable `upstream_timeout` error event. Long because reasoning "
        "models think first; twice it still fits `WEBAPP_MAX_STREAM_SECONDS`. For an agent it applies "
        "to each model call, never to a tool. `0`: off.",
    ),
    "between_chunks_timeout_seconds": Setting(
        "WEBAPP_BETWEEN_CHUNKS_TIMEOUT_SECONDS",
        _option("between_chunks_timeout_seconds"),
        "A model that, once it has shown output, sends nothing for this long ends the stream with a"
        " retryable `upstream_timeout` error event, and its upstream call is closed. Providers "
        "mid-answer send many chunks a second. `0`: off (a silent provider then holds the stream "
        "until `WEBAPP_UPSTREAM_TIMEOUT_SECONDS` or the run deadline).",
    ),
    "upstream_max_retries": Setting(
        "WEBAPP_UPSTREAM_MAX_RETRIES", _int(0, 10), "openai client retries before the first byte (429, 5xx, connection errors)."
    ),
    "upstream_max_connections": Setting(
        "WEBAPP_UPSTREAM_MAX_CONNECTIONS",
        _int(1, 1_000_000),
        "Concurrent connections to the provider per worker. The openai SDK's default pool (1000) would "
        "make every stream past the 1000th wait for a free connection.",
    ),
    "upstream_raw_chunks": Setting(
        "WEBAPP_UPSTREAM_RAW_CHUNKS",
        _bool,
        "Hand ChatOpenAI each streamed chunk as the JSON object the provider sent, instead of an SDK model "
        "that ChatOpenAI converts straight back into that object; halves the CPU per token. `false` keeps the "
        "SDK's models.",
    ),
    "diagnostics": Setting("WEBAPP_DIAGNOSTICS", _bool, "Serve `/api/diagnostics/stream`. `false`: `404`."),
    "cors_origins": Setting(
        "WEBAPP_CORS_ORIGINS",
        lambda n, r: _origins(n, r),
        "Comma-separated origins (`https://app.example.com`) whose pages may call the API from a browser; they get "
        "CORS headers and preflight answers. A browser request from any other site gets `403 forbidden_origin`. `*`: "
        "any site (with API keys only).",
    ),
    "scripted_ttft_ms": Setting("WEBAPP_SCRIPTED_TTFT_MS", _int(0, 600_000), "Scripted model: delay before the first token."),
    "scripted_interval_ms": Setting("WEBAPP_SCRIPTED_INTERVAL_MS", _int(0, 60_000), "Scripted model: delay between tokens."),
    "scripted_reasoning": Setting(
        "WEBAPP_SCRIPTED_REASONING", _bool, "Scripted model: stream a short reasoning summary before each answer, as reasoning models do."
    ),
    "agent_slow_tool_seconds": Setting(
        "WEBAPP_AGENT_SLOW_TOOL_SECONDS",
        _float(0, 30),
        "Demo agent: how long its `slow_lookup` tool takes when the model does not say (0–30): a tool pause for proxies to survive.",
    ),
    "allow_sync_worker": Setting(
        "WEBAPP_ALLOW_SYNC_WORKER",
        _bool,
        "Boot under gunicorn's `sync` worker anyway. By default the app refuses to start there: that worker "
        "kills any stream longer than its `timeout`.",
    ),
    "log_format": Setting(
        "WEBAPP_LOG_FORMAT",
        lambda n, r: _choice(n, r, ("json", "text")),
        "`json`: one object per line with `ts`, `level`, `logger`, `request_id`, `message` and, for `stream_summary` "
        "lines, the stream's fields; `text`: the classic line with the request id and the fields as JSON at the end.",
    ),
    "log_level": Setting(
        "WEBAPP_LOG_LEVEL",
        lambda n, r: _choice(n, r, LOG_LEVELS, upper=True),
        "Level of the `webapp` loggers (stderr, i.e. gunicorn's error log).",
    ),
    "otel": Setting(
        "WEBAPP_OTEL",
        _bool,
        "OpenTelemetry traces: a span per stream, as long as the stream, with the model, tool and step calls under it "
        "(needs `uncut[otel]`). The exporter is OTLP over HTTP, set by the standard `OTEL_*` variables "
        "(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`; `OTEL_TRACES_EXPORTER=none`: no exporter).",
    ),
    "metrics": Setting(
        "WEBAPP_METRICS",
        lambda n, r: _choice(n, r, METRICS_SINKS),
        "Where stream metrics go: `prometheus` (`/metrics`), `otel` (the GenAI metrics over OTLP, by "
        "`OTEL_METRICS_EXPORTER` and `OTEL_EXPORTER_OTLP_ENDPOINT`), or `both`.",
    ),
}

assert set(SETTINGS) == {f.name for f in fields(Settings)}, "every field needs an environment variable"


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build validated settings from an environment mapping (unset or empty values keep defaults)."""
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        raw = environ.get(setting.env)
        if raw is None or raw.strip() == "":
            continue
        values[name] = setting.parse(setting.env, raw)

    if "provider" not in values:
        values["provider"] = "openai" if values.get("openai_api_key") else "scripted"
    if values["provider"] == "openai" and not values.get("openai_api_key"):
        raise ConfigError("WEBAPP_PROVIDER=openai needs OPENAI_API_KEY (any non-empty value for a local OpenAI-compatible server)")
    if "model" not in values:
        values["model"] = DEFAULT_OPENAI_MODEL if values["provider"] == "openai" else "scripted"
    if "api_keys_file" in values:
        try:
            lines = open(values["api_keys_file"], encoding="utf-8").read().splitlines()
        except OSError as exc:
            raise ConfigError(f"WEBAPP_API_KEYS_FILE={values['api_keys_file']!r}: cannot read it ({exc.strerror})") from None
        values["api_keys"] = (*values.get("api_keys", ()), *_keys("WEBAPP_API_KEYS_FILE", lines))
    return Settings(**values)


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a loggable dict, with secrets masked."""
    shown = {f.name: getattr(settings, f.name) for f in fields(settings)}
    if shown["openai_api_key"]:
        shown["openai_api_key"] = "***"
    shown["api_keys"] = f"{len(settings.api_keys)} keys"
    shown["stream_store"] = masked(shown["stream_store"])
    shown["thread_store"] = masked(shown["thread_store"])
    return shown
