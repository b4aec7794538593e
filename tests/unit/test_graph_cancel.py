"""Cancelling a graph's run while one of its tools runs: the demo agent on the scripted model.

Under gevent (a child process, monkey-patched as gunicorn's worker is) the
tool's greenlet is killed where it sleeps and the run ends at once; the
negative control, without killing the graph's task greenlets, waits for the
tool to finish. Under threads the run stops at its next step: the tool
finishes, the model is not called again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from tests.support.servers import ROOT
from uncut.eventlog import MemoryEventLog
from uncut.producer import Producer
from uncut.scripted import ScriptedChatModel
from webapp.agent import build_agent

CHILD = textwrap.dedent("""
    import json, sys, time
    from gevent import monkey; monkey.patch_all()
    from langchain_core.messages import HumanMessage
    import webapp.agent, uncut.graphs
    from uncut.eventlog import MemoryEventLog
    from uncut.producer import Producer
    from uncut.scripted import ScriptedChatModel

    if sys.argv[1] == "off":  # the negative control: only the producer is killed
        uncut.graphs.TaskGreenlets.kill = lambda self, spare=None: 0
    tool = {"outcome": "running"}
    real_sleep = time.sleep
    def slow(seconds, real_sleep=real_sleep):
        try:
            real_sleep(seconds)
            tool["outcome"] = "finished"
        except BaseException as exc:
            tool["outcome"] = type(exc).__name__
            raise
    webapp.agent.time = type("T", (), {"sleep": staticmethod(slow)})
    agent = webapp.agent.build_agent(ScriptedChatModel(ttft=0, interval=0), slow_seconds=3)
    log = MemoryEventLog("s")
    producer = Producer(agent, {"messages": [HumanMessage("look it up slowly")]}, log).start()
    deadline = time.monotonic() + 20
    while not any(e.kind == "tool_call_end" for e in log.read_after(-1, 0)) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the tool is sleeping
    cancelled = time.monotonic()
    producer.cancel()
    producer.join(10)
    print(json.dumps({"run_ended_after": time.monotonic() - cancelled, "tool": tool["outcome"]}))
""")


def child(variant: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, variant], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant", ["on", "off"], ids=["killed", "negative-control-producer-only"])
def test_under_gevent_a_cancel_kills_the_running_tool(variant: str) -> None:
    result = child(variant)
    if variant == "on":
        assert result["tool"] == "GreenletExit" and result["run_ended_after"] < 0.5, result
    else:
        assert result["tool"] == "finished" and result["run_ended_after"] > 2.0, result


class CountingModel(ScriptedChatModel):
    """Counts its calls: a cancelled agent must not call its model again."""

    calls: list[float] = []

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(time.monotonic())
        yield from super()._stream(messages, *args, **kwargs)


def test_under_threads_a_cancelled_agent_stops_at_its_next_step() -> None:
    model = CountingModel(ttft=0, interval=0, calls=[])
    log = MemoryEventLog("s")
    producer = Producer(build_agent(model, slow_seconds=1.0), {"messages": [HumanMessage("look it up slowly")]}, log).start()
    deadline = time.monotonic() + 10
    while not any(e.kind == "tool_call_end" for e in log.read_after(-1, 0)) and time.monotonic() < deadline:
        time.sleep(0.01)
    producer.cancel()
    assert log.last() is not None and log.last().data["error"]["type"] == "cancelled"  # type: ignore[union-attr]
    producer.join(5)  # the tool cannot be interrupted in a thread; the next step does not start
    assert not any(t.name == "_produce" and t.is_alive() for t in threading.enumerate())
    assert len(model.calls) == 1
