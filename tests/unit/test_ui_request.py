"""The AI SDK's chat request as LangChain messages (uncut.ui_request), and every way it is refused."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from uncut.ui_request import InvalidUIRequest, parse_ui_chat


def parse(body: Any):
    return parse_ui_chat(body, max_messages=10, max_message_chars=200)


def user(text: str) -> dict[str, Any]:
    return {"id": "u", "role": "user", "parts": [{"type": "text", "text": text}]}


def test_a_second_turn_with_steps_reasoning_and_tools_becomes_the_model_conversation() -> None:
    # The body DefaultChatTransport sent on a second turn (captured from ai@6.0.326).
    body = {
        "temperature": 0.2,
        "id": "chat_2",
        "trigger": "submit-message",
        "messages": [
            {"parts": [{"type": "text", "text": "first"}], "id": "a", "role": "user"},
            {
                "id": "m1",
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "reasoning", "text": "Need the weather.", "state": "done"},
                    {"type": "text", "text": "Let me check.", "state": "done"},
                    {
                        "type": "tool-getWeather",
                        "toolCallId": "call_1",
                        "state": "output-available",
                        "input": {"city": "Paris"},
                        "output": {"tempC": 21},
                    },
                    {
                        "type": "dynamic-tool",
                        "toolName": "mcp_x",
                        "toolCallId": "call_2",
                        "state": "output-error",
                        "input": {},
                        "errorText": "down",
                    },
                    {"type": "tool-never", "toolCallId": "call_3", "state": "input-available", "input": {}},
                    {"type": "step-start"},
                    {"type": "text", "text": "It is 21C.", "state": "done"},
                    {"type": "data-progress", "data": {"p": 1}},
                ],
            },
            {"parts": [{"type": "text", "text": "second"}], "id": "b", "role": "user"},
        ],
    }
    req = parse(body)
    assert req.chat_id == "chat_2" and req.trigger == "submit-message"
    kinds = [type(m) for m in req.messages]
    assert kinds == [HumanMessage, AIMessage, ToolMessage, ToolMessage, AIMessage, HumanMessage]
    first_step = req.messages[1]
    assert first_step.content == "Let me check."
    assert [(c["id"], c["name"], c["args"]) for c in first_step.tool_calls] == [
        ("call_1", "getWeather", {"city": "Paris"}),
        ("call_2", "mcp_x", {}),
    ]
    assert req.messages[2].content == '{"tempC": 21}' and req.messages[3].status == "error"
    assert req.messages[4].content == "It is 21C."


def test_system_messages_and_regenerate() -> None:
    req = parse(
        {
            "id": "c",
            "trigger": "regenerate-message",
            "messageId": "m9",
            "messages": [
                {"role": "system", "parts": [{"type": "text", "text": "be brief"}]},
                user("hi"),
            ],
        }
    )
    assert isinstance(req.messages[0], SystemMessage) and req.trigger == "regenerate-message"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": [user("hi")]}, "id"),
        ({"id": "a/b", "messages": [user("hi")]}, "id"),
        ({"id": "..", "messages": [user("hi")]}, "id"),
        ({"id": "x" * 129, "messages": [user("hi")]}, "id"),
        ({"id": "c", "trigger": "resume-stream", "messages": [user("hi")]}, "trigger"),
        ({"id": "c", "messageId": 5, "messages": [user("hi")]}, "messageId"),
        ({"id": "c", "messages": []}, "messages"),
        ({"id": "c", "messages": [user("hi")] * 11}, "messages"),
        ({"id": "c", "messages": ["hi"]}, "messages[0]"),
        ({"id": "c", "messages": [{"role": "tool", "parts": []}]}, "messages[0].role"),
        ({"id": "c", "messages": [{"role": "user", "parts": "hi"}]}, "messages[0].parts"),
        ({"id": "c", "messages": [{"role": "user", "parts": [{"text": "no type"}]}]}, "messages[0].parts[0]"),
        ({"id": "c", "messages": [{"role": "user", "parts": [{"type": "text", "text": 5}]}]}, "messages[0].parts[0].text"),
        (
            {"id": "c", "messages": [{"role": "user", "parts": [{"type": "file", "url": "data:,x", "mediaType": "text/plain"}]}]},
            "messages[0].parts[0]",
        ),
        ({"id": "c", "messages": [user("x" * 201)]}, "messages[0].parts"),
        ({"id": "c", "messages": [{"role": "user", "parts": [{"type": "data-x", "data": 1}]}]}, "messages"),
        ({"id": "c", "messages": [user("hi"), {"role": "assistant", "parts": [{"type": "text", "text": "only me"}]}]}, "messages"),
        (
            {
                "id": "c",
                "messages": [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "tool-t", "toolCallId": "x", "state": "output-available", "input": {}, "output": 1},
                            {"type": "tool-t", "toolCallId": "x", "state": "output-available", "input": {}, "output": 1},
                        ],
                    },
                    user("hi"),
                ],
            },
            "messages[0].parts[1].toolCallId",
        ),
        (
            {
                "id": "c",
                "messages": [
                    {"role": "assistant", "parts": [{"type": "dynamic-tool", "toolCallId": "x", "state": "output-available", "output": 1}]},
                    user("hi"),
                ],
            },
            "messages[0].parts[0].toolName",
        ),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidUIRequest) as raised:
        parse(body)
    assert raised.value.param == param
    assert str(raised.value)
