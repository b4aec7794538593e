"""Internal: the adapters' non-streaming answers, framework-free: a run gathered whole, as a status, a JSON body and headers.

Each adapter (uncut.flask, uncut.django, uncut.wsgi) turns a ``Whole``
into its own response object, so the three answer alike.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, NamedTuple

from uncut.openai_chunks import completion
from uncut.relay import Relay
from uncut.streams import Streams


class Whole(NamedTuple):
    status: int
    body: Any
    headers: dict[str, str]


def _failed(error: tuple[int, dict[str, Any], bool]) -> Whole:
    """A failed non-streaming answer: its status, its error body, and whether the openai SDK may retry it."""
    status, body, retryable = error
    return Whole(status, body, {"x-should-retry": "true" if retryable else "false"})


def whole_answer(relay: Relay) -> Whole:
    """``{"text", "finish_reason", "usage"}``, or the run's failure as ``{"error": {"type", "message", "retryable"}}``."""
    answer = Streams.collect_answer(relay)
    if not answer.completed:
        return _failed(answer.error_reply(openai_shape=False))
    return Whole(200, {"text": answer.text, "finish_reason": answer.finish_reason or "stop", "usage": answer.usage}, {})


def whole_completion(relay: Relay, model: str) -> Whole:
    """OpenAI's ``chat.completion``, or its error body and status."""
    answer = Streams.collect_answer(relay)
    if not answer.completed:
        return _failed(answer.error_reply(openai_shape=True))
    body = completion(
        f"chatcmpl-{relay.stream_id}",
        model,
        int(time.time()),
        answer.text,
        answer.finish_reason or "stop",
        answer.usage,
        answer.tool_calls(),
    )
    return Whole(200, body, {})


def whole_response(relay: Relay, echo: Mapping[str, Any]) -> Whole:
    """OpenAI's final Response object, or its error body and status."""
    done = Streams.collect_response(relay, echo)
    if done.failure is None and done.final is not None:
        return Whole(200, done.final, {})
    return _failed(done.error_reply())
