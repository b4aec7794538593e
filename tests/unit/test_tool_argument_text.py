"""Issue 22, findings 8-11 below the web layer: argument fragments repaired like text, schemas checked, deep JSON refused.

``StreamEvents`` holds a trailing high surrogate per call until that call's
next fragment (finding 11, unit level; tests/e2e/test_tool_work_and_text.py
goes through the real clients). ``check_schema`` is the meta-schema's
keyword types (finding 9); model arguments nested past the recursion limit
are an error in the call, not a crash (finding 8).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from uncut.events import StreamEvents, parse_arguments
from webapp.json_schema import MAX_SCHEMA_NODES, SchemaError, check_schema


def fed(*chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    emitted: list[tuple[str, dict[str, Any]]] = []
    events = StreamEvents(lambda kind, data: emitted.append((kind, data)))
    for fragments in chunks:
        events.feed(AIMessageChunk(content="", tool_call_chunks=fragments))  # type: ignore[arg-type]
    events.close()
    return emitted


def fragment(index: int, args: str, name: str | None = None) -> dict[str, Any]:
    return {"index": index, "id": f"c{index}" if name else None, "name": name, "args": args, "type": "tool_call_chunk"}


def deltas(emitted: list[tuple[str, dict[str, Any]]], index: int) -> str:
    return "".join(d["args"] for k, d in emitted if k == "tool_call_delta" and d["index"] == index)


def test_a_pair_split_across_fragments_of_one_call_is_joined_even_between_another_calls_fragments() -> None:
    emitted = fed(
        [fragment(0, "", "f"), fragment(1, "", "g")],
        [fragment(0, '{"a": "\ud83d')],
        [fragment(1, '{"b": "\ud83d')],
        [fragment(1, '\ude01"}')],
        [fragment(0, '\ude00"}')],
    )
    assert deltas(emitted, 0) == '{"a": "\U0001f600"}' and deltas(emitted, 1) == '{"b": "\U0001f601"}'
    ends = [d for k, d in emitted if k == "tool_call_end"]
    assert [e["args"] for e in ends] == [{"a": "\U0001f600"}, {"b": "\U0001f601"}]
    for _, data in emitted:  # every event is encodable
        str(data).encode("utf-8")


def test_half_a_pair_left_at_the_end_is_a_replacement_character() -> None:
    emitted = fed([fragment(0, '{"a": "x', "f")], [fragment(0, "\ud83d")])
    assert deltas(emitted, 0) == '{"a": "x\ufffd'
    (end,) = [d for k, d in emitted if k == "tool_call_end"]
    assert end["args"] is None and end["args_text"] == '{"a": "x\ufffd'


def test_a_lone_low_surrogate_is_a_replacement_character_at_once() -> None:
    emitted = fed([fragment(0, '{"a": "\ude00"}', "f")])
    assert deltas(emitted, 0) == '{"a": "\ufffd"}'


def test_model_arguments_nested_past_the_recursion_limit_are_an_error_not_a_crash() -> None:
    args, error = parse_arguments('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert args is None and error == "the arguments are nested too deeply"


@pytest.mark.parametrize(
    "schema, where",
    [
        ({"required": 5}, "required"),
        ({"required": ["a", "a"]}, "required"),
        ({"properties": {"a": {"enum": 5}}}, "properties.a.enum"),
        ({"properties": {"a": {"minimum": "x"}}}, "properties.a.minimum"),
        ({"properties": {"a": {"maxLength": -1}}}, "properties.a.maxLength"),
        ({"properties": {"a": {"anyOf": [5]}}}, "properties.a.anyOf[0]"),
        ({"properties": {"a": {"anyOf": []}}}, "properties.a.anyOf"),
        ({"$schema": "https://json-schema.org/draft/2020-12/schema", "items": [{"type": "string"}]}, "items"),  # its draft's rule
        ({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "x"}]}, "items[0].type"),
        ({"definitions": {"d": {"multipleOf": 0}}}, "definitions.d.multipleOf"),
        ({"dependencies": {"a": [1]}}, "dependencies.a[0]"),
        ({"not": "x"}, "not"),
    ],
)
def test_keywords_of_the_wrong_type_are_found_where_they_are(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(SchemaError) as raised:
        check_schema(schema)
    assert raised.value.where == where


def test_json_schemas_pass_and_the_walk_is_bounded() -> None:
    check_schema(
        {
            "type": "object",
            "properties": {"a": True, "b": False, "c": {"type": ["string", "null"], "x-custom": 5}},
            "required": [],
            "exclusiveMinimum": 0,
            "dependencies": {"a": ["b"], "c": {"required": ["a"]}},
        }
    )
    check_schema({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": True})  # its own draft
    wide = {"properties": {f"p{i}": {} for i in range(MAX_SCHEMA_NODES)}}
    with pytest.raises(SchemaError, match="subschemas"):
        check_schema(wide)
