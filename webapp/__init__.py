"""The Flask service that streams LangChain chat-model output without cutoffs.

``create_app()`` is the only place configuration comes together: defaults,
then ``WEBAPP_*``/``OPENAI_*`` environment variables, then the ``config``
overrides a test or an embedding app passes in.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

from flask import Flask
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel

from uncut import EventLogStore
from uncut.callbacks import check_sync_handlers
from uncut.eventlog import MemoryStore, StoreUnavailable
from uncut.flask import Streaming
from uncut.gunicorn import detect_worker, ssl_imported_before_patching
from webapp import admission_gate, browser
from webapp.api import STATE_KEY, ServiceState
from webapp.auth import ApiKeys, current_key_id, require_api_keys
from webapp.bodies import BodyDeadline
from webapp.config import ConfigError, Settings, describe, load_settings
from webapp.errors import ApiError, register_error_handlers
from webapp.identity import client_identity
from webapp.logs import configure_logging, install_request_ids, log_stream_summary, summary_fields
from webapp.observability import install_telemetry
from webapp.providers import build_chat_model, warm_up
from webapp.thread_store import ThreadLeases, Threads, ThreadStore, open_thread_store

__all__ = ["create_app", "ConfigError", "Settings"]

log = logging.getLogger("webapp")


def _check_worker(worker: str, settings: Settings) -> None:
    """Refuse the worker set-ups that cut streams; warn about the ones that may."""
    if worker == "sync":
        message = (
            "served by gunicorn's sync worker: it kills any stream longer than its timeout and holds one "
            "stream per process. Use conf/gunicorn.conf.py (worker_class gevent)"
        )
        if not settings.allow_sync_worker:
            raise ConfigError(message + ", or set WEBAPP_ALLOW_SYNC_WORKER=true to boot anyway.")
        log.warning("UNSAFE: %s.", message)
    if worker == "gevent-unpatched":
        raise ConfigError(
            "the app is being loaded by gunicorn's gevent worker class before gevent patched the standard "
            "library (preload_app): ssl and the openai client would be built unpatched and block the worker. "
            "Set preload_app = False (as conf/gunicorn.conf.py does), or call gevent.monkey.patch_all() "
            "on the first lines of your gunicorn config."
        )
    early = ssl_imported_before_patching(ignore=("webapp",))
    if early:
        log.warning(
            "ssl was imported before gevent patched it; these hold the unpatched SSLContext and may block "
            "the worker or raise RecursionError: %s. Import nothing that uses ssl at the top of the gunicorn "
            "config, or patch there first.",
            ", ".join(early[:10]),
        )


def build_store(settings: Settings) -> EventLogStore:
    """The event-log store the settings name; a Redis that does not answer stops start-up."""
    if settings.stream_store == "memory":
        return MemoryStore(settings.stream_ttl_seconds, settings.memory_store_max_events, settings.memory_store_max_bytes)
    from uncut.redis_store import RedisStore, masked

    store = RedisStore(
        settings.stream_store,
        settings.stream_ttl_seconds,
        running_ttl_seconds=settings.max_stream_seconds + settings.stream_ttl_seconds,
        max_events=settings.memory_store_max_events,
        max_bytes=settings.memory_store_max_bytes,
        reseed=settings.stream_store_reseed,
        retry_seconds=settings.stream_store_retry_seconds,
        key_prefix="webapp:",  # the keys this service always wrote (the library's default is "uncut:"): an upgrade keeps them
    )
    try:
        store.ping()
    except StoreUnavailable as exc:
        raise ConfigError(f"WEBAPP_STREAM_STORE={masked(settings.stream_store)}: {exc}") from None
    return store


def build_thread_store(settings: Settings) -> ThreadStore:
    """The threads' checkpointer and index; a database that does not answer is a 503 naming it (and logged)."""
    from uncut.redis_config import masked

    try:
        return open_thread_store(
            settings.thread_store, settings.thread_ttl_seconds, settings.max_threads_per_key, settings.thread_store_pool_size
        )
    except Exception as exc:  # noqa: BLE001 - sqlite3, psycopg and pool errors alike: a clear message, at start-up
        log.error("thread store unavailable: WEBAPP_THREAD_STORE=%s: %s: %s", masked(settings.thread_store), type(exc).__name__, exc)
        raise ApiError(
            503, "thread_store_unavailable", "The thread store does not answer; try again later.", {"Retry-After": "5"}
        ) from None


def create_app(
    config: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    chat_model: BaseChatModel | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> Flask:
    """Build the app. ``config`` overrides the environment, by variable name."""
    settings = load_settings({**(os.environ if environ is None else environ), **(config or {})})
    configure_logging(settings.log_level, settings.log_format)
    worker = detect_worker()
    _check_worker(worker, settings)
    model = chat_model or build_chat_model(settings)
    warm_up(model)
    if isinstance(model.callbacks, list):  # handlers attached to the model run on every call too
        check_sync_handlers(model.callbacks)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _install_streaming(app, settings, model, worker, callbacks)
    _install_guards(app, settings)
    _register_routes(app, settings)

    log.info("provider=%s model=%s worker=%s", settings.provider, settings.model, worker)
    log.debug("settings %s", describe(settings))
    if not settings.heartbeats_enabled:
        log.warning("UNSAFE: heartbeats are off (WEBAPP_HEARTBEAT_SECONDS=0); idle proxies will cut paused streams.")
    return app


def _install_streaming(app: Flask, settings: Settings, model: BaseChatModel, worker: str, callbacks: Sequence[BaseCallbackHandler]) -> None:
    """The service's state (model, agents, threads) and the library's Streaming extension over it."""
    from webapp.agent import build_agent, build_thread_agent  # langchain's create_agent: the service needs it, the library does not

    agent = build_agent(model, settings.agent_slow_tool_seconds)
    threads = Threads(
        lambda: build_thread_store(settings), lambda checkpointer: build_thread_agent(model, settings.agent_slow_tool_seconds, checkpointer)
    )
    app.extensions[STATE_KEY] = ServiceState(settings=settings, chat_model=model, agent=agent, worker=worker, threads=threads)
    install_telemetry(settings)  # Prometheus, OpenTelemetry or both (webapp/observability.py)
    Streaming(
        app,
        store=build_store(settings),
        leases=ThreadLeases(threads),  # one run per thread, in the thread store: every worker and host that shares it
        callbacks=callbacks,
        metadata={"provider": settings.provider, "model": settings.model},
        owner=current_key_id,
        client=client_identity(bool(settings.api_keys), settings.client_address_header),
        summary_fields=summary_fields,
        on_summary=log_stream_summary,
        **settings.stream_options(),
    )


def _install_guards(app: Flask, settings: Settings) -> None:
    """What every request passes first, outermost first: admission, the body's deadline, ids, CORS, keys."""
    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.body_timeout_seconds, settings.max_body_bytes)  # type: ignore[method-assign]
    keys = ApiKeys(settings.api_keys)
    if settings.admission_gate:  # outermost: a refusal is decided before the body is read or Flask builds anything
        admission_gate.install(app, keys, settings.client_address_header, settings.cors_origins)
    register_error_handlers(app)
    install_request_ids(app)
    browser.install(app, settings.cors_origins)  # before the key check: a CORS preflight carries no key
    require_api_keys(app, keys)


def _register_routes(app: Flask, settings: Settings) -> None:
    from webapp.api import agent as agent_api
    from webapp.api import agent_server as agent_server_api
    from webapp.api import chat, diagnostics, health, openai_compat, playground, streams, ui_chat
    from webapp.api import threads as threads_api

    app.register_blueprint(health.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(agent_api.bp)
    app.register_blueprint(ui_chat.bp)
    if settings.diagnostics:
        app.register_blueprint(diagnostics.bp)
    app.register_blueprint(openai_compat.bp)
    app.register_blueprint(streams.bp)
    app.register_blueprint(threads_api.bp)
    app.register_blueprint(agent_server_api.bp)
    app.register_blueprint(playground.bp)
