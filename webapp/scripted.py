"""The scripted chat model: the embedded default and the fault injector.

A real ``BaseChatModel`` (``_generate`` and ``_stream``), so it goes through
LangChain's own ``stream()``/``invoke()`` machinery, callbacks included.
It is deterministic: the same prompt and knobs give the same tokens at the
same pace. It answers with readable text built from the prompt, and can
wait before the first token, pause at token K, or fail at token K.
``time.sleep`` is cooperative under gevent, so its pauses block nobody.
"""

from __future__ import annotations

import itertools
import time
import zlib
from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

_SENTENCES = (
    "The scripted model streams this answer word by word, with no key and no network.",
    "Each word leaves the server as its own event, so you can watch it arrive.",
    "When the model is silent, the server sends a heartbeat comment instead.",
    "Heartbeats keep proxies and load balancers from closing an idle stream.",
    "Every stream ends with an explicit end or error event, never with silence.",
    "A client that leaves early stops the generation, so no tokens are wasted.",
    "Behind nginx, buffering must be off or the whole answer arrives at once.",
    "gunicorn's gevent worker holds thousands of these streams in one process.",
)


class ScriptedModelError(RuntimeError):
    """The failure a script asked for (``fail_at``)."""


def _last_user_text(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return message.text if isinstance(message.text, str) else str(message.content)
    return ""


def _word_count(messages: list[BaseMessage]) -> int:
    return sum(len(str(m.content).split()) for m in messages)


def script_tokens(prompt: str, count: int | None) -> list[str]:
    """The answer's tokens: words with their leading space, ``count`` of them if given."""
    topic = " ".join(prompt.split()[:12]) or "nothing in particular"
    opening = f'You asked: "{topic}".'
    start = zlib.crc32(prompt.encode("utf-8")) % len(_SENTENCES)
    rotation = itertools.chain([opening], itertools.cycle(_SENTENCES[start:] + _SENTENCES[:start]))
    if count is None:  # a natural answer: the opening and four whole sentences
        sentences = [opening, *itertools.islice(rotation, 1, 5)]
        words = " ".join(sentences).split()
    else:
        words = []
        for sentence in rotation:
            words.extend(sentence.split())
            if len(words) >= count:
                break
        words = words[:count]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _tokens_within(tokens: list[str], length: int) -> list[str]:
    """The leading tokens, the last one trimmed, that make up the first ``length`` characters."""
    kept, used = [], 0
    for token in tokens:
        if used + len(token) > length:
            if length > used:
                kept.append(token[: length - used])
            break
        kept.append(token)
        used += len(token)
    return kept


class ScriptedChatModel(BaseChatModel):
    """A deterministic chat model with timing and fault knobs (all times in seconds)."""

    model_name: str = "scripted"
    tokens: int | None = Field(default=None, ge=0, description="Exact answer length; None: a natural length.")
    ttft: float = Field(default=0.3, ge=0, description="Wait before the first token.")
    interval: float = Field(default=0.04, ge=0, description="Wait between tokens.")
    pause: float = Field(default=0.0, ge=0, description="An extra silence of this length...")
    pause_at: int | None = Field(default=None, ge=0, description="...after this many tokens.")
    fail_at: int | None = Field(default=None, ge=0, description="Raise ScriptedModelError after this many tokens.")

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        tokens = script_tokens(_last_user_text(messages), self.tokens)
        finish_reason = "stop"
        if stop:  # end before the first stop sequence, as providers do
            text = "".join(tokens)
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
            tokens = _tokens_within(tokens, cut)
        max_tokens = kwargs.get("max_tokens")
        if isinstance(max_tokens, int) and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        time.sleep(self.ttft)
        for index, text in enumerate(tokens):
            if index == self.fail_at:
                raise ScriptedModelError(f"scripted failure after {index} tokens")
            if index == self.pause_at and self.pause:
                time.sleep(self.pause)
            elif index:
                time.sleep(self.interval)
            # BaseChatModel.stream() reports each chunk to the callbacks itself.
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        if self.fail_at is not None and self.fail_at >= len(tokens):
            raise ScriptedModelError(f"scripted failure after {len(tokens)} tokens")
        if self.pause_at is not None and self.pause_at >= len(tokens) and self.pause:
            time.sleep(self.pause)
        prompt_tokens = _word_count(messages)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": prompt_tokens,
                    "output_tokens": len(tokens),
                    "total_tokens": prompt_tokens + len(tokens),
                },
                response_metadata={"finish_reason": finish_reason, "model_name": self.model_name},
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
