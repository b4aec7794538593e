"""Issue 22, findings 6, 8, 9 and 10: what a /v1 request says about tools is checked before anything runs.

Each was a 500 with a traceback, a 502 from the scripted model, or a
stream many times its byte budget; each is now a 400 in OpenAI's error
shape naming the parameter. The negative controls are the requests that
must still pass: a 256-character model, a well-formed schema, a paired
surrogate, ordinary nesting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}
USER = {"role": "user", "content": "what is the weather in Paris?"}


def chat(client: FlaskClient, **body: Any) -> Any:
    return client.post("/v1/chat/completions", json={"model": "m", "messages": [USER], **body})


def responses(client: FlaskClient, **body: Any) -> Any:
    return client.post("/v1/responses", json={"model": "m", "input": "what is the weather in Paris?", **body})


def assert_openai_400(response: Any, param: str) -> dict[str, Any]:
    assert response.status_code == 400, response.data[:300]
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error", error
    assert error["param"] == param, error
    assert "Traceback" not in error["message"]
    return error


# -- 6. echoed fields are capped ----------------------------------------------------------------------


@pytest.mark.parametrize("surface", ["chat", "responses"])
def test_a_long_model_name_is_refused_naming_model(client: FlaskClient, surface: str) -> None:
    send = chat if surface == "chat" else responses
    error = assert_openai_400(send(client, model="m" * 900_000, stream=True), "model")
    assert "256" in error["message"]
    ok = send(client, model="m" * 256, stream=True)  # negative control: at the cap, it streams
    assert ok.status_code == 200 and ("m" * 256).encode() in ok.data


def test_echoed_reasoning_fields_are_capped(client: FlaskClient) -> None:
    assert_openai_400(responses(client, reasoning={"effort": "x" * 100_000}), "reasoning")
    assert responses(client, reasoning={"effort": "low", "summary": "auto"}).status_code == 200


# -- 8. wrong-typed fields are 400s, and a /v1 500 has OpenAI's shape -----------------------------------


@pytest.mark.parametrize("name", [["get_weather"], {"name": "get_weather"}])
def test_tool_choice_function_name_of_the_wrong_type(client: FlaskClient, name: Any) -> None:
    choice = {"type": "function", "function": {"name": name}}
    assert_openai_400(chat(client, tools=[WEATHER], tool_choice=choice), "tool_choice")
    flat = {"type": "function", "name": name}
    assert_openai_400(responses(client, tools=[{"type": "function", **WEATHER["function"]}], tool_choice=flat), "tool_choice")


@pytest.mark.parametrize("text_format", ["json", ["text"], 5])
def test_responses_text_format_of_the_wrong_type(client: FlaskClient, text_format: Any) -> None:
    assert_openai_400(responses(client, text={"format": text_format}), "text.format")
    assert responses(client, text={"format": {"type": "text"}}).status_code == 200


def called(arguments: str, role_content: str = "sunny") -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": role_content},
    ]


ARGS = "messages[1].tool_calls[0].function.arguments"


def test_arguments_nested_100000_deep_are_refused(client: FlaskClient) -> None:
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    error = assert_openai_400(chat(client, tools=[WEATHER], messages=called(deep)), ARGS)
    assert "nested" in error["message"]
    item = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": deep}
    answer = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    items = [{"role": "user", "content": "weather?"}, item, answer]
    assert_openai_400(responses(client, tools=[{"type": "function", **WEATHER["function"]}], input=items), "input[1].arguments")
    shallow = '{"a": ' + "[" * 10 + "]" * 10 + "}"
    assert chat(client, tools=[WEATHER], messages=called(shallow)).status_code == 200  # negative control


def test_an_unexpected_500_on_v1_has_openais_shape(app: Flask) -> None:
    @app.get("/v1/boom-for-test")
    def boom() -> Any:
        raise RuntimeError("internal detail that must not leak")

    response = app.test_client().get("/v1/boom-for-test")
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "server_error"
    assert "internal detail" not in response.get_data(as_text=True)
    missing = app.test_client().get("/v1/no-such-thing")
    assert missing.status_code == 404 and missing.get_json()["error"]["type"] == "invalid_request_error"
    elsewhere = app.test_client().get("/api/no-such-thing")  # negative control: our own shape off /v1
    assert elsewhere.status_code == 404 and elsewhere.get_json()["error"]["type"] == "not_found"


# -- 9. tool schemas are JSON Schemas --------------------------------------------------------------


BAD_SCHEMAS = [
    ({"type": "object", "properties": {"city": {"type": "string"}}, "required": 5}, "required"),
    ({"type": "object", "properties": {"city": {"enum": 5}}, "required": ["city"]}, "properties.city.enum"),
    ({"type": "object", "properties": {"n": {"type": "number", "minimum": "x"}}, "required": ["n"]}, "properties.n.minimum"),
    ({"type": "object", "properties": {"city": {"anyOf": [5]}}, "required": ["city"]}, "properties.city.anyOf[0]"),
    ({"type": "object", "properties": {"city": {"type": "text"}}}, "properties.city.type"),
    ({"type": "object", "properties": 5}, "properties"),
]


@pytest.mark.parametrize("schema, where", BAD_SCHEMAS, ids=[w for _, w in BAD_SCHEMAS])
def test_a_tool_schema_with_wrong_typed_keywords_is_a_400(client: FlaskClient, schema: dict[str, Any], where: str) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": schema}}
    error = assert_openai_400(chat(client, tools=[tool]), "tools[0].function.parameters")
    assert where in error["message"]
    flat = {"type": "function", "name": "get_weather", "parameters": schema}
    assert_openai_400(responses(client, tools=[flat]), "tools[0].parameters")


def test_well_formed_schemas_still_reach_the_model(client: FlaskClient) -> None:
    """Negative control: boolean subschemas, tuple items, $defs and refs are JSON Schema, and the scripted model takes them."""
    schema = {
        "type": "object",
        "$defs": {"unit": {"enum": ["c", "f"]}},
        "properties": {
            "city": True,
            "unit": {"$ref": "#/$defs/unit"},
            "pair": {"type": "array", "items": [{"type": "number"}], "minItems": 1},
            "n": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 10},
        },
        "required": ["city", "pair", "n"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": schema}}
    response = chat(client, tools=[tool])
    assert response.status_code == 200, response.data[:300]
    (call,) = response.get_json()["choices"][0]["message"]["tool_calls"]
    assert set(json.loads(call["function"]["arguments"])) == {"city", "pair", "n"}


# -- 10. arguments are checked like the body ---------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, why",
    [
        ('{"city": "\\ud800"}', "surrogate"),
        ('{"city": "\\udc00x"}', "surrogate"),
        ('{"n": NaN}', "NaN"),
        ('{"n": -Infinity}', "Infinity"),
    ],
)
def test_arguments_with_lone_surrogates_or_nan_are_refused(client: FlaskClient, arguments: str, why: str) -> None:
    error = assert_openai_400(chat(client, tools=[WEATHER], messages=called(arguments)), ARGS)
    assert why in error["message"]


def test_paired_surrogates_in_arguments_pass(client: FlaskClient) -> None:
    """Negative control: an escaped emoji is a pair, valid JSON, and goes to the model."""
    response = chat(client, tools=[WEATHER], messages=called('{"city": "Paris \\ud83d\\ude00"}'))
    assert response.status_code == 200, response.data[:300]
