"""Runs on a thread with a real ``create_agent`` + ``HumanInTheLoopMiddleware``: pause, answer, continue, exactly once.

The scripted model calls ``send_email`` when the prompt names it; the
checkpointer is LangGraph's InMemorySaver. Every refusal is checked to come
before any model call, and the answer checks have their negative control:
the same bad answer with validation off fails mid-stream and leaves the
thread unusable.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from tests.support.model_calls import ModelCalls
from uncut import sse
from uncut.leases import Lease, MemoryLeases, take_lease
from uncut.scripted import ScriptedChatModel
from uncut.streams import Streams
from uncut.threads import Interrupted, InvalidResume, NothingToResume, ThreadBusy

ASK = {"messages": [{"role": "user", "content": "send email to bob about lunch"}]}


def agent_with(mode: str = "batched", allowed: Any = True) -> tuple[Any, list[dict[str, str]]]:
    outbox: list[dict[str, str]] = []

    @tool
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email (recorded, not sent)."""
        outbox.append({"to": to, "subject": subject, "body": body})
        return "queued"

    middleware = HumanInTheLoopMiddleware(interrupt_on={"send_email": allowed}, interrupt_mode=mode)  # type: ignore[arg-type]
    return create_agent(ScriptedChatModel(), [send_email], checkpointer=InMemorySaver(), middleware=[middleware]), outbox


def events(relay: Any) -> list[tuple[str, dict[str, Any]]]:
    """The response's events as (kind, data)."""
    items = sse.parse_stream(list(relay.sse_frames()))
    return [(item.event, json.loads(item.data)) for item in items if isinstance(item, sse.ServerSentEvent)]


def of_kind(items: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [data for event, data in items if event == kind]


@pytest.fixture
def streams() -> Streams:
    return Streams()


def paused(streams: Streams, thread: str = "t1", **agent_args: Any) -> tuple[Any, list[dict[str, str]], dict[str, Any]]:
    agent, outbox = agent_with(**agent_args)
    first = events(streams.stream_thread(agent, thread, input=ASK))
    (interrupt,) = of_kind(first, "interrupt")
    assert of_kind(first, "end")[0]["finish_reason"] == "interrupt"
    return agent, outbox, interrupt


def test_a_paused_thread_shows_its_interrupt_by_id_and_an_approval_runs_the_tool_once(streams: Streams) -> None:
    agent, outbox, interrupt = paused(streams)
    (pending,) = interrupt["interrupts"]
    assert isinstance(pending["id"], str) and pending["id"]
    assert pending["value"]["action_requests"][0]["name"] == "send_email" and outbox == []

    resumed = events(streams.stream_thread(agent, "t1", resume={"decisions": [{"type": "approve"}]}))
    assert [r["name"] for r in of_kind(resumed, "tool_result")] == ["send_email"] and len(outbox) == 1
    assert of_kind(resumed, "end")[0]["finish_reason"] != "interrupt"

    with pytest.raises(NothingToResume) as again:  # the same answer twice: nothing is pending any more
        streams.stream_thread(agent, "t1", resume={"decisions": [{"type": "approve"}]})
    assert again.value.status == 409 and len(outbox) == 1


def test_a_resume_by_interrupt_id_and_an_edit_that_fits_the_schema_run_the_edited_call(streams: Streams) -> None:
    agent, outbox, interrupt = paused(streams)
    interrupt_id = interrupt["interrupts"][0]["id"]
    edit = {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "alice", "subject": "s", "body": "b"}}}
    events(streams.stream_thread(agent, "t1", resume={interrupt_id: {"decisions": [edit]}}))
    assert outbox == [{"to": "alice", "subject": "s", "body": "b"}]


BAD_ANSWERS = {
    "too few decisions": {"decisions": []},
    "not a decision list": {"approve": True},
    "unknown type": {"decisions": [{"type": "maybe"}]},
    "edit args off the schema": {"decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": {"to": 3}}}]},
    "edit to another tool": {"decisions": [{"type": "edit", "edited_action": {"name": "delete_all", "args": {}}}]},
    "respond without a message": {"decisions": [{"type": "respond"}]},
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_is_refused_before_any_model_call_naming_what_is_wrong(streams: Streams, answer: Any) -> None:
    agent, outbox, _ = paused(streams)
    calls = ModelCalls()
    with pytest.raises(InvalidResume) as refused:
        streams.stream_thread(agent, "t1", resume=answer, callbacks=[calls])
    assert refused.value.status == 400 and refused.value.body()["error"]["type"] == "invalid_resume"
    assert refused.value.body()["error"]["problems"], refused.value.body()
    assert calls.count == 0 and outbox == []
    # The thread is untouched: a good answer still goes through.
    events(streams.stream_thread(agent, "t1", resume={"decisions": [{"type": "approve"}]}))
    assert len(outbox) == 1


def test_a_decision_the_tool_does_not_allow_is_refused(streams: Streams) -> None:
    agent, outbox, _ = paused(streams, allowed={"allowed_decisions": ["approve", "reject"]})
    with pytest.raises(InvalidResume, match="'edit' is not allowed for send_email"):
        streams.stream_thread(agent, "t1", resume={"decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": {}}}]})


def test_negative_control_without_validation_a_bad_answer_fails_mid_stream_and_sticks_to_the_thread(streams: Streams) -> None:
    agent, outbox, _ = paused(streams)
    failed = events(streams.stream_thread(agent, "t1", resume={"decisions": []}, validate=False))
    assert of_kind(failed, "error"), [kind for kind, _ in failed]  # the graph's ValueError, after the stream began
    # LangGraph kept the bad answer as the interrupt's resume value: the right answer now fails the same way.
    again = events(streams.stream_thread(agent, "t1", resume={"decisions": [{"type": "approve"}]}, validate=False))
    assert of_kind(again, "error") and outbox == []


def test_per_call_mode_answers_are_checked_against_the_interrupts_own_schema(streams: Streams) -> None:
    agent, outbox, interrupt = paused(streams, mode="per_call", allowed={"allowed_decisions": ["approve", "reject"]})
    assert interrupt["interrupts"][0]["value"]["type"] == "tool_approval"
    with pytest.raises(InvalidResume, match="'respond' is not allowed"):
        streams.stream_thread(agent, "t1", resume={"type": "respond", "message": "done"})
    events(streams.stream_thread(agent, "t1", resume={"type": "reject", "message": "not today"}))
    assert outbox == []


def test_a_new_message_on_a_paused_thread_is_refused_unless_the_pending_calls_are_rejected(streams: Streams) -> None:
    agent, outbox, _ = paused(streams)
    with pytest.raises(Interrupted) as refused:
        streams.stream_thread(agent, "t1", input={"messages": [{"role": "user", "content": "hello"}]})
    assert refused.value.status == 409 and refused.value.body()["error"]["interrupts"][0]["id"]

    events(streams.stream_thread(agent, "t1", input={"messages": [{"role": "user", "content": "hello"}]}, reject_pending=True))
    messages = agent.get_state({"configurable": {"thread_id": "t1"}}).values["messages"]
    kinds = [type(m).__name__ for m in messages]
    assert kinds[:4] == ["HumanMessage", "AIMessage", "ToolMessage", "HumanMessage"], kinds  # every call answered, in order
    assert "rejected" in messages[2].content and outbox == []


def test_with_nothing_pending_a_resume_is_refused_and_a_bare_answer_needs_one_pending(streams: Streams) -> None:
    agent, _ = agent_with()
    with pytest.raises(NothingToResume):
        streams.stream_thread(agent, "fresh", resume={"decisions": []})


def test_a_second_run_on_a_busy_thread_is_refused_and_the_lease_is_given_back_at_the_end(streams: Streams) -> None:
    agent, outbox = agent_with()
    held = take_lease(streams.leases, "t1")  # another worker's run, as far as this one can tell
    assert held is not None
    with pytest.raises(ThreadBusy) as busy:
        streams.stream_thread(agent, "t1", input=ASK)
    assert busy.value.status == 409
    held.release()
    events(streams.stream_thread(agent, "t1", input=ASK))
    assert streams.leases.holder("t1") is None  # the run ended: free again


def test_a_lease_that_is_not_renewed_expires_and_a_renewed_one_does_not() -> None:
    now = [0.0]
    store = MemoryLeases(clock=lambda: now[0])
    assert store.take("t", "a", 10) and not store.take("t", "b", 10)
    now[0] = 9.0
    assert store.renew("t", "a", 10) and not store.take("t", "b", 10)  # renewed at 9 s: held until 19 s
    now[0] = 19.5
    assert store.take("t", "b", 10)  # a dead holder renews nothing
    assert not store.renew("t", "a", 10)  # and cannot take it back by renewing
    store.give_back("t", "a")
    assert store.holder("t") == "b"  # giving back someone else's lease does nothing


def test_a_held_lease_is_renewed_in_the_background() -> None:
    store = MemoryLeases()
    lease = take_lease(store, "t", ttl=0.3)
    assert isinstance(lease, Lease)
    time.sleep(0.8)
    assert store.holder("t") == lease.token and not lease.lost
    lease.release()
    assert store.holder("t") is None


def test_a_run_that_died_mid_tool_leaves_a_thread_that_takes_the_next_message(streams: Streams) -> None:
    agent, outbox = agent_with()
    config = {"configurable": {"thread_id": "t1"}}
    ask_time = {"messages": [{"role": "user", "content": "send email to bob"}]}
    steps = agent.stream(ask_time, config, stream_mode="updates")
    next(steps)  # the model's step (its tool call) is checkpointed...
    steps.close()  # ...and the run stops there, as a killed worker's would
    assert agent.get_state(config).next  # unfinished
    events(streams.stream_thread(agent, "t1", input={"messages": [{"role": "user", "content": "hello"}]}))
    messages = agent.get_state(config).values["messages"]
    kinds = [type(m).__name__ for m in messages]
    assert kinds[:4] == ["HumanMessage", "AIMessage", "ToolMessage", "HumanMessage"], kinds
    assert "did not finish" in messages[2].content and outbox == []


class KilledHere(BaseException):
    """Ends a run where a kill -9 would: no handler runs, nothing more is written."""


class LosesCheckpoints(InMemorySaver):
    """Keeps a step's writes but, once armed, loses every checkpoint: a worker killed between the two."""

    armed = False

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return config if self.armed else super().put(config, checkpoint, metadata, new_versions)


@pytest.mark.parametrize("lost_after", ["model", "HumanInTheLoopMiddleware.after_model", None])
def test_a_run_killed_between_a_steps_writes_and_its_checkpoint_still_answers_its_open_call(lost_after: str | None) -> None:
    calls: list[str] = []

    @tool
    def look_up(topic: str) -> str:
        """Look up a topic."""
        calls.append(topic)
        if len(calls) == 1:
            raise KilledHere()  # the first call dies with its worker; later ones answer
        return "found"

    saver = LosesCheckpoints()
    agent = create_agent(ScriptedChatModel(), [look_up], checkpointer=saver, middleware=[HumanInTheLoopMiddleware(interrupt_on={})])
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(KilledHere):
        for update in agent.stream({"messages": [{"role": "user", "content": "look up cats"}]}, config, stream_mode="updates"):
            saver.armed = saver.armed or lost_after in update
    saver.armed = False  # the next worker's checkpointer writes as usual
    events(Streams().stream_thread(agent, "t", input={"messages": [{"role": "user", "content": "hello"}]}))
    messages = agent.get_state(config).values["messages"]
    kinds = [type(m).__name__ for m in messages]
    assert kinds[:4] == ["HumanMessage", "AIMessage", "ToolMessage", "HumanMessage"], kinds
    assert "did not finish" in messages[2].content
