"""``POST /v1/responses`` bodies (webapp.responses_request): what is accepted, and 400s that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from webapp.chat_request import ChatLimits
from webapp.openai_tools import InvalidCompletionRequest
from webapp.responses_request import parse_responses_request

LIMITS = ChatLimits(max_messages=10, max_message_chars=500)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": None,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def parse(**body: Any):
    return parse_responses_request({"model": "m", **body}, LIMITS, 1000)


def test_a_string_input_with_instructions_and_sampling() -> None:
    req = parse(input="hi", instructions="be terse", temperature=0.2, max_output_tokens=50, stream=True, metadata={"k": "v"}, store=False)
    assert [type(m) for m in req.messages] == [SystemMessage, HumanMessage]
    assert req.stream and req.params == {"temperature": 0.2, "max_tokens": 50}
    assert req.echo["instructions"] == "be terse" and req.echo["metadata"] == {"k": "v"} and req.echo["max_output_tokens"] == 50


def test_the_multi_turn_items_the_sdk_sends() -> None:
    # What openai's create() sent for a conversation with a call and its output (captured from openai 3.54.0).
    req = parse(
        tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and be brief"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "x"}]},
            {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_abc", "output": '{"temp_c": 21}'},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "It is 21C.", "annotations": []}],
            },
            {"role": "user", "content": "thanks"},
        ],
    )
    assert [type(m) for m in req.messages] == [HumanMessage, HumanMessage, AIMessage, ToolMessage, AIMessage, HumanMessage]
    assert req.messages[2].tool_calls[0]["args"] == {"city": "Paris"}
    assert req.tools[0]["function"]["name"] == "get_weather"
    assert req.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert req.echo["tools"][0]["name"] == "get_weather" and req.echo["tool_choice"] == {"type": "function", "name": "get_weather"}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "hi", "foo": 1}, "foo", "unsupported_parameter"),
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
        ({"input": "hi", "store": True}, "store", "unsupported_parameter"),
        ({"input": ""}, "input", None),
        ({"input": []}, "input", None),
        ({"input": 5}, "input", None),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", None),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content[0]", None),
        ({"input": [{"type": "web_search_call", "id": "x"}]}, "input[0].type", None),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}, "input[0].tool_calls", None),
        (
            {"input": [{"role": "user", "content": "q"}, {"type": "function_call_output", "call_id": "nope", "output": "x"}]},
            "input[1].tool_call_id",
            None,
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "q"},
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{bad"},
                    {"type": "function_call_output", "call_id": "c", "output": "x"},
                ]
            },
            "input[1].arguments",
            None,
        ),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", None),
        ({"input": "hi", "tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name", None),
        ({"input": "hi", "tools": [TOOL], "tool_choice": {"type": "function", "name": "other"}}, "tool_choice", None),
        ({"input": "hi", "tool_choice": "required"}, "tool_choice", None),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens", None),
        ({"input": "hi", "max_output_tokens": 1001}, "max_output_tokens", None),
        ({"input": "hi", "temperature": 3}, "temperature", None),
        ({"input": "hi", "stream": "yes"}, "stream", None),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "text.format", None),
        ({"input": "hi", "metadata": {"k": 1}}, "metadata", None),
        ({"input": "hi", "instructions": 5}, "instructions", None),
        ({"input": "hi", "model": ""}, "model", None),
        ({"input": [{"role": "user", "content": "x"}] * 11}, "input", None),
    ],
)
def test_refused_naming_the_param(body: dict[str, Any], param: str, code: str | None) -> None:
    with pytest.raises(InvalidCompletionRequest) as raised:
        parse(**body)
    assert raised.value.param == param, str(raised.value)
    assert raised.value.code == code
