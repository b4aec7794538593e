"""Log formatting: JSON lines with the request id and structured fields, or the text form."""

from __future__ import annotations

import json
import logging

from webapp.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("webapp.stream", logging.INFO, __file__, 1, "stream_summary", None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_request_id_and_fields() -> None:
    line = json.loads(JsonFormatter().format(record(request_id="r-1", fields={"outcome": "completed", "tokens": 3})))
    assert line["message"] == "stream_summary" and line["request_id"] == "r-1"
    assert line["outcome"] == "completed" and line["tokens"] == 3 and line["level"] == "INFO"


def test_text_lines_keep_the_fields_as_json_at_the_end() -> None:
    text = TextFormatter().format(record(request_id=None, fields={"outcome": "completed"}))
    assert "[-]: stream_summary" in text and text.endswith('{"outcome": "completed"}')
