"""Internal: an AI SDK chat kept on a LangGraph thread: approvals asked in the stream, answered by the chat's next request.

The flow is the AI SDK's own (``addToolApprovalResponse``): a run that
stops at ``HumanInTheLoopMiddleware`` streams ``tool-approval-request`` on
each paused call and finishes its message (uncut.ui_messages); the user's
answers mark those parts ``approval-responded``, and the client's next
request carries them. That request resumes the thread, once:

- an approved call runs, and its ``tool-output-available`` follows;
- a denied call is rejected (the model is told, with the user's reason),
  and the client gets ``tool-output-denied``;
- the rest of the run continues the same assistant message.

A request with a new user message instead passes over any approval still
waiting (each pending call is rejected, the model is told why) and adds the
message. The thread keeps the conversation, so only the user's new messages
are added; a thread that has none yet starts with the whole conversation the
client sent. Regenerating an answer would rewrite the thread's history, and
is refused. Everything that depends on the thread is worked out under its
lease (``FromState``). Imports no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from langchain_core.messages import BaseMessage, HumanMessage

from uncut.approvals import is_approval_request
from uncut.threads import NOTHING, FromState, InvalidResume, InvalidThread, NothingToResume, PendingInterrupt
from uncut.ui_messages import CONTINUES_MESSAGE, DENIED_CALLS, KNOWN_CALLS, approval_id
from uncut.ui_request import Approval, UIChatRequest, chat_thread_id  # noqa: F401 (its home until 0.2; public in uncut.ui_request)

DENIED = "The user denied this tool call."


@dataclass(frozen=True)
class ChatTurn:
    """What a chat request asks of its thread: ``Streams.stream_thread``'s arguments, and the run's ``start`` data."""

    input: Any = NOTHING
    resume: Any = NOTHING
    reject_pending: bool = False
    start_data: dict[str, Any] = field(default_factory=dict)


def plan_chat_turn(request: UIChatRequest) -> ChatTurn:
    """The turn for ``request``: a resume with its approvals' decisions, or its new user messages."""
    if request.approvals:
        assert request.continued is not None  # parse_ui_chat sets both or neither
        start = {
            CONTINUES_MESSAGE: request.continued.message_id,
            KNOWN_CALLS: list(request.continued.tool_call_ids),
            DENIED_CALLS: [a.tool_call_id for a in request.approvals if not a.approved],
        }
        return ChatTurn(resume=FromState(lambda values, pending: approval_answers(pending, request.approvals)), start_data=start)
    if request.trigger == "regenerate-message":
        raise InvalidThread("regenerating an answer is not supported on a chat kept on a thread: send a new message")
    return ChatTurn(input=FromState(lambda values, pending: {"messages": new_messages(values, request.messages)}), reject_pending=True)


def approval_answers(pending: tuple[PendingInterrupt, ...], approvals: tuple[Approval, ...]) -> dict[str, Any]:
    """The resume for the pending approvals, one decision per action request, by interrupt id; or ``ThreadError``."""
    by_id: dict[str, Approval] = {}
    for approval in approvals:
        if approval.approval_id in by_id:
            raise InvalidResume(f"approval {approval.approval_id[:80]} is answered twice")
        by_id[approval.approval_id] = approval
    if not pending:
        raise NothingToResume("no approval waits in this chat (answered already, or the chat is new here)")
    answers: dict[str, Any] = {}
    for interrupt in pending:
        if not is_approval_request(interrupt.value):
            raise InvalidResume("the chat waits for an answer that is not an approval; the chat cannot give it", interrupts=[interrupt.id])
        decisions = []
        for index in range(len(interrupt.value["action_requests"])):
            answer = by_id.pop(approval_id(interrupt.id, index), None)
            if answer is None:
                raise InvalidResume(f"approval {approval_id(interrupt.id, index)} has no answer: answer every approval of the message")
            decisions.append({"type": "approve"} if answer.approved else {"type": "reject", "message": answer.reason or DENIED})
        answers[interrupt.id] = {"decisions": decisions}
    if by_id:
        raise InvalidResume(f"no approval {', '.join(sorted(by_id))[:200]} waits in this chat (answered already, or not this chat's)")
    return answers


def new_messages(values: Mapping[str, Any], conversation: list[BaseMessage]) -> list[BaseMessage]:
    """What the thread gets: all of ``conversation`` when it has no messages yet, else the user's messages after its last answer."""
    if not values.get("messages"):
        return list(conversation)
    added: list[BaseMessage] = []
    for message in reversed(conversation):
        if not isinstance(message, HumanMessage):
            break
        added.append(message)
    if not added:
        raise InvalidThread("a chat kept on a thread takes a new user message, or answers to its approvals")
    return added[::-1]
