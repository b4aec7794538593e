"""The agent both servers of ``python -m bench.agent_server`` serve: ``create_agent`` with one tool, on the scripted model.

Each run does the same work on both servers: the model calls the tool
(``get_weather``, its arguments streamed in fragments), the tool answers
with a fixed text, and the model answers from it in exactly ``TOKENS``
words, ``INTERVAL`` apart, after ``TTFT``. Two model calls, one tool call,
and the checkpoints in between.

``BenchScriptedModel`` is ``uncut.scripted.ScriptedChatModel`` with a native
async stream: the same chunks at the same times, waited for with
``asyncio.sleep``. The stock model has only a synchronous ``_stream``:
``langgraph dev`` (asyncio) would run its blocking ``time.sleep`` in the
default thread pool (6 threads on 2 cores), or, as it does, refuse it on the
event loop (blockbuster's ``BlockingError``). Under gevent ``time.sleep`` is
cooperative, so each server waits in its own native way and neither holds a
thread per run. ``same_chunks_as_stock()`` checks the chunks against the stock model's.

``graph`` has no checkpointer: ``langgraph dev`` brings its own, and
``bench/apps/agent_server_app.py`` gives uncut's ``AgentServer`` an
``InMemorySaver``. ``langgraph.json`` (this folder) points ``langgraph dev`` here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Iterator

from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import StructuredTool

from uncut.scripted import ARGUMENT_FRAGMENT_CHARS, ScriptedChatModel, _last_user_text, _tool_results, _words, script_tokens
from uncut.tool_script import answer_from_results, plan_tool_calls

TTFT = 0.3  # seconds before each model call's first chunk
INTERVAL = 0.02  # seconds between chunks
TOKENS = 50  # words in the final answer (the tool's text is sized for it)
PROMPT = "What is the weather in Paris?"
INPUT = {"messages": [{"role": "user", "content": PROMPT}]}
# 32 words, under the 200 characters the script quotes: the scripted model answers
# 'The get_weather tool returned "<this>". That is what the tools found; ...' = 50 words.
WEATHER = (
    "Sunny and mild in the city today, with a light breeze from the west, clear skies until the evening, "
    "and a chance of rain after midnight, so take a coat along tonight"
)


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return WEATHER


async def aget_weather(city: str) -> str:
    """Current weather for a city."""
    return WEATHER


class BenchScriptedModel(ScriptedChatModel):
    """The scripted model's chunks and pauses, waited for with ``time.sleep`` (sync) or ``asyncio.sleep`` (async).

    ``_script`` builds what ``ScriptedChatModel._stream`` yields, from the same
    helpers, each chunk with the pause before it: TTFT before the first, the
    interval before each later text token and each tool-argument fragment,
    none before a call's header or the closing usage chunk. It cannot call
    ``_stream`` itself: that sleeps with ``time.sleep`` even at zero, which
    ``langgraph dev`` (blockbuster) refuses on its event loop.
    ``bench.agent_server`` checks before every run that both give the same chunks.
    Only what this bench uses: no stop sequences, max_tokens, reasoning, pauses or failures.
    """

    def _script(self, messages: list[BaseMessage], **kwargs: Any) -> list[tuple[float, ChatGenerationChunk]]:
        tools = kwargs.get("tools") or []
        results = _tool_results(messages)
        script: list[tuple[float, ChatGenerationChunk]] = []
        if tools and not results and kwargs.get("tool_choice") != "none":
            calls = plan_tool_calls(
                _last_user_text(messages), tools, kwargs.get("tool_choice"), kwargs.get("parallel_tool_calls"), salt=len(messages)
            )
            for index, call in enumerate(calls):
                fragment = {"index": index, "id": call.id, "name": call.name, "args": "", "type": "tool_call_chunk"}
                header = ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[fragment]))
                script.append((self.ttft if index == 0 else 0.0, header))
            pieces = [
                [call.arguments[i : i + ARGUMENT_FRAGMENT_CHARS] for i in range(0, len(call.arguments), ARGUMENT_FRAGMENT_CHARS)]
                for call in calls
            ]
            for step in range(max(map(len, pieces), default=0)):
                for index, call_pieces in enumerate(pieces):
                    if step < len(call_pieces):
                        fragment = {"index": index, "id": None, "name": None, "args": call_pieces[step], "type": "tool_call_chunk"}
                        script.append((self.interval, ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[fragment]))))
            script.append((0.0, self._last_chunk(messages, sum(map(len, pieces)), "tool_calls")))
            return script
        tokens = _words(answer_from_results(results)) if results else script_tokens(_last_user_text(messages), self.tokens)
        for index, text in enumerate(tokens):
            script.append((self.ttft if index == 0 else self.interval, ChatGenerationChunk(message=AIMessageChunk(content=text))))
        script.append((0.0 if tokens else self.ttft, self._last_chunk(messages, len(tokens), "stop")))
        return script

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for pause, chunk in self._script(messages, **kwargs):
            if pause:
                time.sleep(pause)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for pause, chunk in self._script(messages, **kwargs):
            if pause:
                await asyncio.sleep(pause)
            yield chunk


def same_chunks_as_stock() -> None:
    """Raise unless both model calls of a run give the stock ``ScriptedChatModel``'s chunks (run outside any event loop)."""
    from langchain_core.messages import HumanMessage, ToolMessage

    tools = [weather_tool]
    bench = BenchScriptedModel(tokens=TOKENS, ttft=0.0, interval=0.0)
    stock = ScriptedChatModel(tokens=TOKENS, ttft=0.0, interval=0.0)
    first = [HumanMessage(PROMPT)]
    kwargs = bench.bind_tools(tools).kwargs  # type: ignore[attr-defined]
    calls = list(stock._stream(first, **kwargs))
    call = sum((c.message for c in calls[1:]), calls[0].message)
    second = [*first, call, ToolMessage(WEATHER, tool_call_id=call.tool_calls[0]["id"], name="get_weather")]
    for messages in (first, second):
        mine = [c.message for c in bench._stream(messages, **kwargs)]
        theirs = [c.message for c in stock._stream(messages, **kwargs)]
        if mine != theirs:
            raise AssertionError(f"the bench model's chunks differ from ScriptedChatModel's:\n{mine}\n{theirs}")


def expected_answer() -> str:
    """The final answer's text, exactly as both servers must stream it."""
    return answer_from_results([("get_weather", WEATHER)])


model = BenchScriptedModel(tokens=TOKENS, ttft=TTFT, interval=INTERVAL)
weather_tool = StructuredTool.from_function(func=get_weather, coroutine=aget_weather, name="get_weather")
graph = create_agent(model, tools=[weather_tool])

assert len(expected_answer().split()) == TOKENS, expected_answer()
