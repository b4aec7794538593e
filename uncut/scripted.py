"""The scripted chat model: the embedded default and the fault injector.

A real ``BaseChatModel`` (``_generate`` and ``_stream``), so it goes through
LangChain's own ``stream()``/``invoke()`` machinery, callbacks included.
It is deterministic: the same prompt and knobs give the same tokens at the
same pace. It answers with readable text built from the prompt, and can
wait before the first token, pause at token K, or fail at token K. Bound to
tools (``bind_tools``, as ``create_agent`` does), it calls them the way
OpenAI streams calls, and answers from their results once they are back
(``uncut.tool_script`` decides which and with what).
``time.sleep`` is cooperative under gevent, so its pauses block nobody.
"""

from __future__ import annotations

import itertools
import time
import zlib
from typing import Any, Callable, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCallChunk, ToolMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from uncut.errors import ScriptedModelError
from uncut.tool_script import PlannedCall, answer_from_results, plan_tool_calls

__all__ = ["ScriptedChatModel", "ScriptedModelError"]

# A tool call's JSON arguments are streamed in fragments of this many characters, as providers do.
ARGUMENT_FRAGMENT_CHARS = 8

_SENTENCES = (
    "The scripted model streams this answer word by word, with no key and no network.",
    "Each word leaves the server as its own event, so you can watch it arrive.",
    "When the model is silent, the server sends a heartbeat comment instead.",
    "Heartbeats keep proxies and load balancers from closing an idle stream.",
    "Every stream ends with an explicit end or error event, never with silence.",
    "A client that leaves early stops the producer, so no tokens are wasted.",
    "Behind nginx, buffering must be off or the whole answer arrives at once.",
    "gunicorn's gevent worker holds thousands of these streams in one process.",
)


def _last_user_text(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return message.text if isinstance(message.text, str) else str(message.content)
    return ""


def _tool_results(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    """The tool results the conversation ends with, as (tool name, output): the model answers from them."""
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        output = message.content if isinstance(message.content, str) else str(message.content)
        results.append((message.name or "tool", output))
    return results[::-1]


def _words(text: str) -> list[str]:
    words = text.split()
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


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
    reasoning: bool = Field(default=False, description="Stream a short reasoning summary before the answer.")

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
        tools = kwargs.get("tools") or []
        results = _tool_results(messages)
        if tools and not results and kwargs.get("tool_choice") != "none":
            prompt = _last_user_text(messages)
            calls = plan_tool_calls(prompt, tools, kwargs.get("tool_choice"), kwargs.get("parallel_tool_calls"), salt=len(messages))
            yield from self._stream_calls(calls, messages)
            return
        tokens = _words(answer_from_results(results)) if results else script_tokens(_last_user_text(messages), self.tokens)
        finish_reason = "stop"
        if stop:  # end before the first stop sequence, as providers do
            text = "".join(tokens)
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
            tokens = _tokens_within(tokens, cut)
        max_tokens = kwargs.get("max_tokens")
        if isinstance(max_tokens, int) and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        time.sleep(self.ttft)
        if self.reasoning:
            yield from self._stream_reasoning(_last_user_text(messages) if not results else "the tools' results")
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
        yield self._last_chunk(messages, len(tokens), finish_reason)

    def _stream_reasoning(self, about: str) -> Iterator[ChatGenerationChunk]:
        """A reasoning summary in LangChain's standard content blocks, word by word, as reasoning models stream it."""
        topic = " ".join(about.split()[:8]) or "nothing in particular"
        for word in _words(f'The question is about "{topic}". I will answer in a few plain sentences.'):
            time.sleep(self.interval)
            yield ChatGenerationChunk(message=AIMessageChunk(content=[{"type": "reasoning", "reasoning": word}]))

    def _stream_calls(self, calls: list[PlannedCall], messages: list[BaseMessage]) -> Iterator[ChatGenerationChunk]:
        """Each call's first fragment (id and name), then its arguments in pieces, interleaved by index."""
        time.sleep(self.ttft)
        for index, call in enumerate(calls):
            fragment: ToolCallChunk = {"index": index, "id": call.id, "name": call.name, "args": "", "type": "tool_call_chunk"}
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[fragment]))
        pieces = [
            [call.arguments[i : i + ARGUMENT_FRAGMENT_CHARS] for i in range(0, len(call.arguments), ARGUMENT_FRAGMENT_CHARS)]
            for call in calls
        ]
        sent = 0
        for step in range(max(map(len, pieces), default=0)):
            for index, call_pieces in enumerate(pieces):
                if step < len(call_pieces):
                    if sent == self.fail_at:
                        raise ScriptedModelError(f"scripted failure after {sent} fragments")
                    time.sleep(self.interval)
                    fragment = {"index": index, "id": None, "name": None, "args": call_pieces[step], "type": "tool_call_chunk"}
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[fragment]))
                    sent += 1
        yield self._last_chunk(messages, sum(map(len, pieces)), "tool_calls")

    def _last_chunk(self, messages: list[BaseMessage], output_tokens: int, finish_reason: str) -> ChatGenerationChunk:
        prompt_tokens = _word_count(messages)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": prompt_tokens,
                    "output_tokens": output_tokens,
                    "total_tokens": prompt_tokens + output_tokens,
                },
                response_metadata={"finish_reason": finish_reason, "model_name": self.model_name},
            )
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The model with tools it may call (OpenAI's format), as ``create_agent`` and ``/v1`` bind them."""
        params: dict[str, Any] = {"tools": [convert_to_openai_tool(tool) for tool in tools]}
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            params["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(**params)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
