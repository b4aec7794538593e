"""Callbacks that cannot cut a stream, and the refusal of async ones.

Two of the article's cutoff causes live here. A handler that raises with
``raise_error=True`` aborts ``llm.stream()`` mid-answer; we wrap every
handler so its exception is logged once per stream and swallowed. An async
handler on the sync path makes LangChain run a fresh event loop for every
event (``asyncio.Runner`` per token); we refuse it when it is configured,
before any request, with an error that says what to do instead.
"""

from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Iterable, Sequence

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables import RunnableConfig

from uncut.errors import AsyncCallbackError

__all__ = ["AsyncCallbackError", "check_sync_handlers"]

log = logging.getLogger(__name__)

_EVENT_METHODS = tuple(name for name, _ in inspect.getmembers(BaseCallbackHandler, inspect.isfunction) if name.startswith("on_"))
_IGNORE_FLAGS = tuple(
    name for name, value in inspect.getmembers(BaseCallbackHandler) if name.startswith("ignore_") and isinstance(value, property)
)


def check_sync_handlers(handlers: Iterable[BaseCallbackHandler]) -> list[BaseCallbackHandler]:
    """Return the handlers as a list, or raise ``AsyncCallbackError`` for any async one."""
    checked = []
    for handler in handlers:
        if not isinstance(handler, BaseCallbackHandler):
            raise TypeError(f"{handler!r} is not a LangChain callback handler")
        is_async = isinstance(handler, AsyncCallbackHandler) or any(
            inspect.iscoroutinefunction(getattr(handler, name, None)) for name in _EVENT_METHODS
        )
        if is_async:
            raise AsyncCallbackError(
                f"{type(handler).__name__} is an async callback handler; the sync streaming path would run an "
                "asyncio event loop for each of its events. Subclass BaseCallbackHandler with plain (def) methods."
            )
        checked.append(handler)
    return checked


class SafeCallbackHandler(BaseCallbackHandler):
    """Forwards every event to ``inner``; an exception is logged once, never raised."""

    raise_error = False

    def __init__(self, inner: BaseCallbackHandler) -> None:
        self.inner = inner
        self.run_inline = getattr(inner, "run_inline", False)
        self.failures = 0

    def _forward(self, event: str, /, *args: Any, **kwargs: Any) -> Any:
        # Positional-only: LangChain passes keyword arguments such as name=.
        try:
            return getattr(self.inner, event)(*args, **kwargs)
        except NotImplementedError:
            # LangChain falls back from on_chat_model_start to on_llm_start on this.
            if event == "on_chat_model_start":
                raise
        except Exception:
            self.failures += 1
            if self.failures == 1:
                log.exception("callback %s.%s raised; ignored so the stream goes on", type(self.inner).__name__, event)
        return None

    def __repr__(self) -> str:
        return f"SafeCallbackHandler({self.inner!r})"


def _make_forwarder(name: str) -> Any:
    def forward(self: SafeCallbackHandler, /, *args: Any, **kwargs: Any) -> Any:
        return self._forward(name, *args, **kwargs)

    forward.__name__ = name
    return forward


def _make_ignore_flag(name: str) -> property:
    return property(lambda self: bool(getattr(self.inner, name)))


for _name in _EVENT_METHODS:
    setattr(SafeCallbackHandler, _name, _make_forwarder(_name))
for _name in _IGNORE_FLAGS:
    setattr(SafeCallbackHandler, _name, _make_ignore_flag(_name))


def safe_handlers(handlers: Sequence[BaseCallbackHandler]) -> list[BaseCallbackHandler]:
    """Wrap each handler for one stream, so failures are counted per stream."""
    return [SafeCallbackHandler(handler) for handler in handlers]


def with_safe_callbacks(config: RunnableConfig | None, handlers: Sequence[BaseCallbackHandler]) -> RunnableConfig:
    """A copy of ``config`` whose callbacks (ours and any it had) are all sync-checked and wrapped.

    Raises ``AsyncCallbackError`` before anything runs if one is async.
    """
    run_config: RunnableConfig = dict(config or {})  # type: ignore[assignment]
    given = run_config.get("callbacks")
    if isinstance(given, BaseCallbackManager):
        manager = given.copy()
        check_sync_handlers(manager.handlers)
        for handler in safe_handlers(check_sync_handlers(handlers)):
            manager.add_handler(handler, inherit=True)
        run_config["callbacks"] = manager
    else:
        run_config["callbacks"] = safe_handlers(check_sync_handlers([*handlers, *(given or [])]))
    return run_config


class StreamCancelled(BaseException):
    """Raised inside the model's stream to stop it; a BaseException so no library code swallows it."""


# Events at which a cancelled stream is stopped: every token, and the start of any step.
_CANCEL_POINTS = ("on_llm_new_token", "on_llm_start", "on_chat_model_start", "on_chain_start", "on_tool_start", "on_retriever_start")


class CancelOnNextEvent(BaseCallbackHandler):
    """Stops a run from the inside at its next token or step once ``cancelled`` is set.

    Closing a chain's stream from outside is not enough: LangChain's
    RunnableSequence answers ``GeneratorExit`` by draining its input, so the
    model would run (and bill) to the end. An exception raised from a
    callback inside the model's own loop unwinds every layer, and the
    openai client closes the HTTP response on the way out. Under gevent the
    producer is also killed where it blocks, which is faster still.
    """

    raise_error = True
    run_inline = True

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    def _check(self, *args: Any, **kwargs: Any) -> None:
        if self.cancelled.is_set():
            raise StreamCancelled()


for _name in _CANCEL_POINTS:
    setattr(CancelOnNextEvent, _name, CancelOnNextEvent._check)


def with_handler(config: RunnableConfig, handler: BaseCallbackHandler) -> RunnableConfig:
    """A copy of ``config`` with ``handler`` added, unwrapped, to its callbacks."""
    run_config: RunnableConfig = dict(config)  # type: ignore[assignment]
    given = run_config.get("callbacks")
    if isinstance(given, BaseCallbackManager):
        manager = given.copy()
        manager.add_handler(handler, inherit=True)
        run_config["callbacks"] = manager
    else:
        run_config["callbacks"] = [*(given or []), handler]
    return run_config
