"""The AI SDK's chat request (``DefaultChatTransport``'s POST body) as LangChain messages, with no web framework.

``useChat`` sends ``{"id", "messages": [UIMessage], "trigger", "messageId"?}``
plus whatever the app adds. Each UIMessage has a ``role`` and ``parts``.
An assistant message is a list of steps (``step-start`` parts): each step
becomes one ``AIMessage`` (its text and tool calls) followed by one
``ToolMessage`` per call that has an output, the way the model produced
them. Reasoning, sources, data and step parts carry nothing for the model
and are skipped; a tool call that never got an output (the user stopped it)
is left out, since every call sent to a model must have its answer. Files
are refused: the service sends text only. Anything malformed raises
``InvalidUIRequest`` naming the field.

Approvals: when the last message is the assistant's and some of its tool
parts are ``approval-responded`` (``addToolApprovalResponse``), the request
answers them: ``approvals`` holds each answer, and ``continued`` names the
message the answer continues (``uncut.ui_threads`` resumes the chat's
thread with them).

``max_messages`` counts the messages the model gets, not the UI messages:
one assistant message of 9,000 steps once became 18,000 model messages,
all sent upstream. A message has at most ``max_parts`` parts, refused
before any is looked at, and conversion stops as soon as the count passes
the limit, so a refused request costs at most that many messages' work.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from uncut.errors import InvalidUIRequest, UncutError

__all__ = ["Approval", "InvalidUIRequest", "UIChatRequest", "chat_thread_id", "parse_ui_chat", "valid_chat_id"]

TRIGGERS = ("submit-message", "regenerate-message")
# Parts in one UI message. A long agent turn has a few per step (step-start, reasoning, text, tools).
MAX_PARTS = 1000
# Chat ids go in the resume URL's path: no slashes, nothing a proxy might rewrite.
_CHAT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass(frozen=True)
class Approval:
    """The user's answer to one ``tool-approval-request``: the part's ``approval`` once it is ``approval-responded``."""

    approval_id: str
    tool_call_id: str
    approved: bool
    reason: str | None = None


@dataclass(frozen=True)
class Continued:
    """The assistant message a request continues (its approvals answered): its id and every tool call it shows."""

    message_id: str
    tool_call_ids: tuple[str, ...]


@dataclass(frozen=True)
class UIChatRequest:
    chat_id: str
    messages: list[BaseMessage]
    trigger: str
    approvals: tuple[Approval, ...] = ()
    continued: Continued | None = None


def chat_thread_id(owner: str | None, chat_id: str) -> str:
    """The thread of ``owner``'s chat ``chat_id``: chat ids are the client's to choose, so two owners' never meet."""
    digest = hashlib.sha256(f"{owner or ''}\0{chat_id}".encode()).hexdigest()[:40]
    return f"chat_{digest}"


def valid_chat_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not _CHAT_ID.fullmatch(value) or value in (".", ".."):
        raise InvalidUIRequest(f"{where} must be 1 to 128 letters, digits or _.:- (the AI SDK's chat id)", where)
    return value


def parse_ui_chat(body: Any, *, max_messages: int, max_message_chars: int, max_parts: int = MAX_PARTS) -> UIChatRequest:
    """Validate an AI SDK chat request; the conversation comes out as at most ``max_messages`` LangChain messages."""
    if not isinstance(body, dict):
        raise InvalidUIRequest("the body must be a JSON object")
    chat_id = valid_chat_id(body.get("id"))
    trigger = body.get("trigger", "submit-message")
    if trigger not in TRIGGERS:
        raise InvalidUIRequest(f"trigger must be one of {', '.join(TRIGGERS)}", "trigger")
    message_id = body.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise InvalidUIRequest("messageId must be a string", "messageId")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidUIRequest("messages must be a non-empty list of UI messages", "messages")
    if len(messages) > max_messages:
        raise InvalidUIRequest(f"messages has more than {max_messages} items", "messages")
    converted: list[BaseMessage] = []
    for index, message in enumerate(messages):
        try:
            converted += _message(message, f"messages[{index}]", max_message_chars, max_parts, max_messages - len(converted))
        except _TooMany:
            raise _too_many(max_messages) from None
        if len(converted) > max_messages:
            raise _too_many(max_messages)
    approvals, continued = _answered_approvals(messages[-1], f"messages[{len(messages) - 1}]", max_message_chars)
    if not approvals and (not converted or not isinstance(converted[-1], (HumanMessage, ToolMessage))):
        raise InvalidUIRequest("the conversation must end with a user message that has text, or answered approvals", "messages")
    return UIChatRequest(chat_id, converted, trigger, approvals, continued)


def _answered_approvals(message: dict[str, Any], where: str, max_chars: int) -> tuple[tuple[Approval, ...], Continued | None]:
    """The approvals the last message answers, and the message they continue; none unless it is the assistant's."""
    if message.get("role") != "assistant":
        return (), None
    approvals: list[Approval] = []
    call_ids: list[str] = []
    for index, part in enumerate(message["parts"]):
        kind, at = part["type"], f"{where}.parts[{index}]"
        if not (kind.startswith("tool-") or kind == "dynamic-tool"):
            continue
        call_ids.append(part["toolCallId"])  # checked by _assistant: a unique non-empty string
        if part.get("state") != "approval-responded":
            continue
        approval = part.get("approval")
        if not isinstance(approval, dict):
            raise InvalidUIRequest(f"{at}.approval must be an object", f"{at}.approval")
        approval_id, approved, reason = approval.get("id"), approval.get("approved"), approval.get("reason")
        if not isinstance(approval_id, str) or not 0 < len(approval_id) <= 200:
            raise InvalidUIRequest(f"{at}.approval.id must be a string of 1 to 200 characters", f"{at}.approval.id")
        if not isinstance(approved, bool):
            raise InvalidUIRequest(f"{at}.approval.approved must be true or false", f"{at}.approval.approved")
        if reason is not None and not isinstance(reason, str):
            raise InvalidUIRequest(f"{at}.approval.reason must be a string", f"{at}.approval.reason")
        if reason is not None:
            _check_length(reason, f"{at}.approval.reason", max_chars)
        approvals.append(Approval(approval_id, part["toolCallId"], approved, reason or None))
    if not approvals:
        return (), None
    message_id = message.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 200:
        raise InvalidUIRequest(f"{where}.id must be a string of 1 to 200 characters (the message the approvals continue)", f"{where}.id")
    return tuple(approvals), Continued(message_id, tuple(call_ids))


class _TooMany(UncutError):
    """An assistant message's steps would pass what is left of ``max_messages``."""


def _too_many(max_messages: int) -> InvalidUIRequest:
    return InvalidUIRequest(
        f"messages: the conversation is more than {max_messages} model messages (each user message, assistant step and tool output is one)",
        "messages",
    )


def _message(message: Any, where: str, max_chars: int, max_parts: int, room: int) -> list[BaseMessage]:
    if not isinstance(message, dict):
        raise InvalidUIRequest(f"{where} must be an object with role and parts", where)
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        raise InvalidUIRequest(f"{where}.role must be one of system, user, assistant", f"{where}.role")
    parts = message.get("parts")
    if not isinstance(parts, list):
        raise InvalidUIRequest(f"{where}.parts must be a list", f"{where}.parts")
    if len(parts) > max_parts:
        raise InvalidUIRequest(f"{where}.parts: too many parts (more than {max_parts})", f"{where}.parts")
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidUIRequest(f"{where}.parts[{index}] must be an object with a type", f"{where}.parts[{index}]")
    if role == "assistant":
        return _assistant(parts, where, max_chars, room)
    text = _text_of(parts, where, max_chars)
    if not text.strip():
        return []  # a message of only non-text parts (data, sources) says nothing to the model
    return [HumanMessage(text) if role == "user" else SystemMessage(text)]


def _check_length(text: str, where: str, max_chars: int) -> str:
    if len(text) > max_chars:
        raise InvalidUIRequest(f"{where} is longer than {max_chars} characters", where)
    return text


def _text_of(parts: list[dict[str, Any]], where: str, max_chars: int) -> str:
    texts = []
    for index, part in enumerate(parts):
        kind = part["type"]
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidUIRequest(f"{where}.parts[{index}].text must be a string", f"{where}.parts[{index}].text")
            texts.append(part["text"])
        elif kind == "file":
            raise InvalidUIRequest(f"{where}.parts[{index}]: file parts are not supported; send text", f"{where}.parts[{index}]")
    return _check_length("".join(texts), f"{where}.parts", max_chars)


def _tool_output(part: dict[str, Any]) -> tuple[str, str] | None:
    """A finished call's output as the tool message's content and status; None for a call without one."""
    state = part.get("state")
    if state == "output-available":
        output = part.get("output")
        return (output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)), "success"
    if state == "output-error":
        return str(part.get("errorText") or "The tool failed."), "error"
    return None


def _assistant(parts: list[dict[str, Any]], where: str, max_chars: int, room: int) -> list[BaseMessage]:
    """The steps as model messages; past ``room`` of them, refused before the next is built."""
    out: list[BaseMessage] = []
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[ToolMessage] = []
    seen: set[str] = set()

    def end_step() -> None:
        if text or calls:
            if len(out) + 1 + len(results) > room:
                raise _TooMany()
            out.append(AIMessage(content=_check_length("".join(text), f"{where}.parts", max_chars), tool_calls=list(calls)))
            out.extend(results)
        text.clear()
        calls.clear()
        results.clear()

    for index, part in enumerate(parts):
        kind, at = part["type"], f"{where}.parts[{index}]"
        if kind == "step-start":
            end_step()
        elif kind == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidUIRequest(f"{at}.text must be a string", f"{at}.text")
            text.append(part["text"])
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            name = part.get("toolName") if kind == "dynamic-tool" else kind[len("tool-") :]
            call_id = part.get("toolCallId")
            if not isinstance(call_id, str) or not call_id or call_id in seen:
                raise InvalidUIRequest(f"{at}.toolCallId must be a string, unique in its message", f"{at}.toolCallId")
            if not isinstance(name, str) or not name:
                raise InvalidUIRequest(f"{at} must name its tool", f"{at}.toolName")
            finished = _tool_output(part)
            if finished is None:
                continue  # never ran to an output: not sent to the model
            args = part.get("input")
            seen.add(call_id)
            calls.append({"id": call_id, "name": name, "args": args if isinstance(args, dict) else {}})
            content, status = finished
            results.append(ToolMessage(_check_length(content, f"{at}.output", max_chars), tool_call_id=call_id, name=name, status=status))
        elif kind == "file":
            raise InvalidUIRequest(f"{at}: file parts are not supported; send text", at)
        # Anything else (reasoning, sources, data, parts of later SDK versions) says nothing to the model.
    end_step()
    return out
