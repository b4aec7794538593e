"""Stall limits (uncut.stall): their ranges, the retry-only-before-output rule, threads, gevent and graphs.

Under threads the limit ends the log on time and the blocked producer's
late output is discarded; under gevent (a monkey-patched child process, as
gunicorn's worker is) a silent call before any output is abandoned and made
again once, and never after output or for a graph. A graph's tool running
longer than both limits is not a stall. Each has its negative control: the
limit off.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from tests.support.servers import ROOT
from uncut.eventlog import MemoryEventLog
from uncut.options import OptionError, StreamOptions
from uncut.producer import Producer
from uncut.scripted import ScriptedChatModel
from uncut.stall import END, RETRY, STALL_RETRIES, StallLimits, verdict
from webapp.agent import build_agent
from webapp.config import ConfigError, load_settings

LIMIT = 0.4


# -- options ----------------------------------------------------------------------------


def test_the_defaults_are_long_for_the_first_chunk_and_shorter_between_chunks() -> None:
    options = StreamOptions()
    assert (options.first_chunk_timeout_seconds, options.between_chunks_timeout_seconds) == (120.0, 60.0)
    assert 2 * options.first_chunk_timeout_seconds < (options.max_stream_seconds or 0)  # the retry fits the deadline
    settings = load_settings({})
    assert settings.stream_options()["first_chunk_timeout_seconds"] == 120.0
    assert settings.stream_options()["between_chunks_timeout_seconds"] == 60.0


@pytest.mark.parametrize("name", ["first_chunk_timeout_seconds", "between_chunks_timeout_seconds"])
@pytest.mark.parametrize("value", [-1, 86_401, float("nan"), float("inf"), True, "60"])
def test_a_stall_limit_outside_its_range_is_refused(name: str, value: Any) -> None:
    with pytest.raises(OptionError, match=name):
        StreamOptions(**{name: value})


@pytest.mark.parametrize("name", ["first_chunk_timeout_seconds", "between_chunks_timeout_seconds"])
def test_zero_turns_a_limit_off_and_text_parses_through_the_same_range(name: str) -> None:
    assert getattr(StreamOptions(**{name: 0}), name) == 0
    assert StreamOptions.parse(name, "2.5") == 2.5
    with pytest.raises(OptionError, match="0 turns it off"):
        StreamOptions.parse(name, "-2")
    env = "WEBAPP_" + name.upper()
    assert getattr(load_settings({env: "30"}), name) == 30.0
    with pytest.raises(ConfigError, match=env):
        load_settings({env: "soon"})
    assert not StallLimits(0, 0).on and StallLimits(0, 1).on
    assert StallLimits(0, 5).limit(answered=False) == float("inf") and StallLimits(0, 5).limit(answered=True) == 5


# -- the retry rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "retries", "can_retry", "expected"),
    [
        (False, 0, True, RETRY),  # silent before any output, a greenlet, not a graph: call again
        (False, STALL_RETRIES, True, END),  # ...but only once
        (True, 0, True, END),  # output was sent: a new call would repeat it
        (False, 0, False, END),  # a graph, or a thread (which cannot be interrupted)
    ],
)
def test_a_stall_is_retried_only_before_any_output(answered: bool, retries: int, can_retry: bool, expected: str) -> None:
    assert verdict(answered=answered, retries=retries, can_retry=can_retry) == expected


# -- under threads ----------------------------------------------------------------------


def start(runnable: Any, limits: StallLimits, input: Any = "hi") -> tuple[Producer, MemoryEventLog]:
    log = MemoryEventLog("s")
    return Producer(runnable, input, log, stall=limits).start(), log


def wait_finished(log: MemoryEventLog, timeout: float) -> float:
    began = time.monotonic()
    while not log.finished and time.monotonic() - began < timeout:
        time.sleep(0.01)
    return time.monotonic() - began


def kinds(log: MemoryEventLog) -> list[str]:
    return [event.kind for event in log.read_after(-1, 0)]


def test_under_threads_a_silent_start_ends_on_time_and_the_late_answer_is_discarded() -> None:
    producer, log = start(ScriptedChatModel(ttft=1.5, interval=0, tokens=3), StallLimits(LIMIT, LIMIT))
    took = wait_finished(log, 5)
    assert kinds(log) == ["start", "error"] and LIMIT - 0.05 <= took < LIMIT + 0.6
    assert log.last().data["error"]["type"] == "upstream_timeout"  # type: ignore[union-attr]
    producer.join(5)  # the thread could not be interrupted: it stopped at its first token
    assert kinds(log) == ["start", "error"]


def test_under_threads_a_silence_mid_answer_ends_on_time() -> None:
    model = ScriptedChatModel(ttft=0, interval=0.01, tokens=6, pause=1.5, pause_at=2)
    producer, log = start(model, StallLimits(LIMIT, LIMIT))
    took = wait_finished(log, 5)
    assert kinds(log) == ["start", "token", "token", "error"] and took < LIMIT + 0.6
    assert "mid-answer" in log.last().data["error"]["message"]  # type: ignore[union-attr]
    producer.join(5)
    assert kinds(log) == ["start", "token", "token", "error"]


def test_negative_control_under_threads_without_limits_the_silence_is_waited_out() -> None:
    model = ScriptedChatModel(ttft=0, interval=0.01, tokens=6, pause=1.5, pause_at=2)
    producer, log = start(model, StallLimits(0, 0))
    assert wait_finished(log, 3 * LIMIT) >= 3 * LIMIT - 0.05 and not log.finished
    producer.join(5)
    assert kinds(log) == ["start"] + ["token"] * 6 + ["end"]


AGENT_INPUT = {"messages": [HumanMessage("look it up slowly")]}


def test_under_threads_a_graphs_tool_running_past_both_limits_is_not_a_stall() -> None:
    agent = build_agent(ScriptedChatModel(ttft=0, interval=0), slow_seconds=3 * LIMIT)
    producer, log = start(agent, StallLimits(LIMIT, LIMIT), AGENT_INPUT)
    wait_finished(log, 10)
    assert "tool_result" in kinds(log) and kinds(log)[-1] == "end", kinds(log)


def test_under_threads_a_graphs_silent_model_is_a_stall() -> None:
    agent = build_agent(ScriptedChatModel(ttft=1.5, interval=0), slow_seconds=0)
    producer, log = start(agent, StallLimits(LIMIT, LIMIT), AGENT_INPUT)
    took = wait_finished(log, 5)
    assert kinds(log) == ["start", "error"] and took < LIMIT + 0.6
    assert log.last().data["error"]["type"] == "upstream_timeout"  # type: ignore[union-attr]
    producer.join(5)


# -- under gevent -----------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys, time
    from gevent import monkey; monkey.patch_all()
    from langchain_core.messages import HumanMessage
    from langchain_core.runnables import RunnableGenerator
    from uncut.eventlog import MemoryEventLog
    from uncut.producer import Producer
    from uncut.scripted import ScriptedChatModel
    from uncut.stall import StallLimits
    from webapp.agent import build_agent

    variant, limit = sys.argv[1], float(sys.argv[2])
    calls = []  # one per call of the runnable: how it ended

    def scripted(plans):
        def gen(inputs):
            for _ in inputs:
                pass
            calls.append("running")
            plan = plans[min(len(calls) - 1, len(plans) - 1)]
            try:
                for step in plan:
                    if isinstance(step, str):
                        yield step
                    else:
                        time.sleep(step)
                calls[-1] = "finished"
            except BaseException as exc:
                calls[len(calls) - 1] = type(exc).__name__
                raise
        return RunnableGenerator(gen)

    class Counting(ScriptedChatModel):
        def _stream(self, *args, **kwargs):
            calls.append("model")
            yield from super()._stream(*args, **kwargs)

    runnable, input = {
        "before": lambda: (scripted([[3.0, "a"], ["a", "b"]]), "hi"),
        "twice": lambda: (scripted([[3.0, "a"]]), "hi"),
        "after": lambda: (scripted([["a", 3.0, "b"]]), "hi"),
        "graph": lambda: (build_agent(Counting(ttft=3.0, interval=0), slow_seconds=0), {"messages": [HumanMessage("hi")]}),
        "tool": lambda: (build_agent(Counting(ttft=0, interval=0), slow_seconds=3 * limit),
                         {"messages": [HumanMessage("look it up slowly")]}),
    }[variant]()
    log = MemoryEventLog("s")
    began = time.monotonic()
    producer = Producer(runnable, input, log, stall=StallLimits(limit, limit)).start()
    while not log.finished and time.monotonic() - began < 10:
        time.sleep(0.01)
    took = time.monotonic() - began
    producer.join(5)
    events = log.read_after(-1, 0)
    print(json.dumps({"kinds": [e.kind for e in events], "took": took, "calls": calls,
                      "text": "".join(e.data.get("text", "") for e in events if e.kind == "token"),
                      "error": events[-1].data.get("error")}))
""")


def child(variant: str, limit: float = LIMIT) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, variant, str(limit)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_under_gevent_a_silent_start_is_abandoned_and_called_again() -> None:
    result = child("before")
    assert result["kinds"] == ["start", "token", "token", "end"] and result["text"] == "ab", result
    assert result["calls"] == ["Stalled", "finished"]  # the first call was unwound where it blocked
    assert LIMIT - 0.05 <= result["took"] < LIMIT + 1.0


def test_under_gevent_the_retry_is_made_once() -> None:
    result = child("twice")
    assert result["kinds"] == ["start", "error"] and result["error"]["type"] == "upstream_timeout", result
    assert result["calls"] == ["Stalled", "GreenletExit"]  # the second silent call was ended, not retried
    assert 2 * LIMIT - 0.05 <= result["took"] < 2 * LIMIT + 1.0


def test_under_gevent_a_silence_after_output_is_never_retried() -> None:
    result = child("after")
    assert result["kinds"] == ["start", "token", "error"] and "mid-answer" in result["error"]["message"], result
    assert result["calls"] == ["GreenletExit"] and result["took"] < LIMIT + 1.0


def test_under_gevent_a_graph_is_never_run_again() -> None:
    result = child("graph")
    assert result["kinds"] == ["start", "error"] and result["error"]["type"] == "upstream_timeout", result
    assert result["calls"] == ["model"] and result["took"] < LIMIT + 1.0


def test_under_gevent_a_graphs_tool_running_past_both_limits_is_not_a_stall() -> None:
    result = child("tool")
    assert "tool_result" in result["kinds"] and result["kinds"][-1] == "end", result
    assert result["calls"] == ["model", "model"]


def test_negative_control_under_gevent_without_limits_a_silent_start_is_waited_out() -> None:
    result = child("twice", limit=0)
    assert result["kinds"] == ["start", "token", "end"] and result["calls"] == ["finished"], result
    assert result["took"] >= 3.0
