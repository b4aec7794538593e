"""Issue 22, finding 9 (the agent's half): a tool that fails is a tool result, and its work is bounded.

``calculate`` of a complex power, a float overflow or a product past 4,300
digits (Python's int-to-str limit) raised something other than
``ToolException``, which LangChain does not catch: the agent run failed as
``upstream_error`` with ``retryable: true``. The docs (docs/agents.md) promise a
``tool_result`` with ``status: "error"``, and the run goes on to an answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from uncut.sse import ServerSentEvent, parse_stream
from webapp import agent, create_app

BIG_PRODUCT = "*".join(["999999**64"] * 12)  # 12 x 384 digits: past 4,300, within the 200-character expression


@pytest.fixture
def client() -> FlaskClient:
    return create_app({**FAST_SCRIPTED, "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "0.2"}, environ={}).test_client()


def run(client: FlaskClient, message: str) -> list[ServerSentEvent]:
    response = client.post("/api/agent/events", json={"message": message})
    assert response.status_code == 200
    return [e for e in parse_stream([response.data]) if isinstance(e, ServerSentEvent)]


@pytest.mark.parametrize(
    "expression, why",
    [
        ("((-1)**0.5)//1", "not a real number"),
        ("999999.0**64", "too large"),
        (BIG_PRODUCT, "digits"),
    ],
)
def test_a_failing_calculation_is_an_error_result_and_the_run_goes_on(client: FlaskClient, expression: str, why: str) -> None:
    received = run(client, f"calculate {expression}")
    (result,) = [e.json() for e in received if e.event == "tool_result"]
    assert result["name"] == "calculate" and result["status"] == "error" and why in result["content"], result
    assert received[-1].event == "end", received[-1].data  # not an upstream_error: the model answered from the error
    text = "".join(e.json()["text"] for e in received if e.event == "token")
    assert "The calculate tool returned" in text


def test_any_exception_of_a_demo_tool_becomes_an_error_result(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only the calculator: whatever a tool raises is reported to the model, never a failed run."""

    def broken(*args: Any) -> Any:
        raise KeyError("something internal")

    monkeypatch.setattr(agent.datetime, "datetime", type("Broken", (), {"now": staticmethod(broken)}))
    received = run(create_app({**FAST_SCRIPTED}, environ={}).test_client(), "what is the current time?")
    (result,) = [e.json() for e in received if e.event == "tool_result"]
    assert result["status"] == "error" and "KeyError" in result["content"] and "something internal" not in result["content"]
    assert received[-1].event == "end"


def test_calculations_that_fit_still_answer(client: FlaskClient) -> None:
    """Negative control: the bounds leave ordinary arithmetic alone (and 999999**64 has 384 digits)."""
    (result,) = [e.json() for e in run(client, "calculate 999999**64 - 1") if e.event == "tool_result"]
    assert result["status"] == "success" and result["content"] == str(999999**64 - 1)
