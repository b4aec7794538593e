"""Internal: checking a human's answer to ``HumanInTheLoopMiddleware`` before the graph sees it.

The middleware checks the decisions itself, but only once the run is under
way: a wrong count or a decision its tool does not allow raises
``ValueError`` mid-stream. Worse, LangGraph has by then saved the answer as
the interrupt's resume value, so every later resume of that thread meets
the same bad answer (measured: the next, correct resume fails the same way).
So a resume is checked here first, and a bad one never reaches the graph.

Both of the middleware's modes are known:

- ``batched`` (its default): one interrupt per model turn, its value an
  ``HITLRequest`` (``action_requests``, ``review_configs``), answered with
  ``{"decisions": [...]}``, one per action, in order;
- ``per_call``: one interrupt per gated call, its value a
  ``ToolApprovalRequest`` (``type: "tool_approval"``), answered with a single
  decision; the decisions allowed come from the interrupt's
  ``response_schema``.

A decision is ``approve``, ``edit`` (``edited_action: {name, args}``; the
name may not change, the arguments must fit the tool's schema), ``reject``
(an optional ``message``) or ``respond`` (a ``message``). Imports no web
framework; pydantic comes with langchain-core.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ValidationError

DECISION_TYPES = ("approve", "edit", "reject", "respond")
MAX_MESSAGE_CHARS = 20_000  # a reviewer's reason or answer: text for the model, not a document


def is_batched_request(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("action_requests"), list) and isinstance(value.get("review_configs"), list)


def is_per_call_request(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "tool_approval" and isinstance(value.get("name"), str)


def is_approval_request(value: Any) -> bool:
    """True for what ``HumanInTheLoopMiddleware`` interrupts with (either mode)."""
    return is_batched_request(value) or is_per_call_request(value)


def answer_problems(request: Any, answer: Any, *, response_schema: Any = None, tools: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with ``answer`` to the approval ``request``; empty when the graph will take it."""
    tools = tools or {}
    if is_batched_request(request):
        return _batched_problems(request, answer, tools)
    if is_per_call_request(request):
        return _decision_problems(answer, request["name"], _allowed_by_schema(response_schema), tools, "the decision")
    return []


def reject_all(request: Any, message: str) -> Any:
    """The answer that rejects every call ``request`` holds, with ``message`` as the reason."""
    reject = {"type": "reject", "message": message}
    if is_batched_request(request):
        return {"decisions": [dict(reject) for _ in request["action_requests"]]}
    return reject


def _batched_problems(request: Mapping[str, Any], answer: Any, tools: Mapping[str, Any]) -> list[str]:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("decisions"), list):
        return ['the answer must be {"decisions": [...]}, one decision per action request']
    actions = request["action_requests"]
    decisions = answer["decisions"]
    if len(decisions) != len(actions):
        names = ", ".join(str(a.get("name")) for a in actions if isinstance(a, Mapping))
        return [f"{len(decisions)} decision(s) for {len(actions)} action request(s) ({names}): one each, in order"]
    allowed_by_name = {
        config.get("action_name"): list(config.get("allowed_decisions") or [])
        for config in request["review_configs"]
        if isinstance(config, Mapping)
    }
    problems: list[str] = []
    for index, (action, decision) in enumerate(zip(actions, decisions)):
        name = action.get("name") if isinstance(action, Mapping) else None
        problems += _decision_problems(decision, str(name), allowed_by_name.get(name, list(DECISION_TYPES)), tools, f"decisions[{index}]")
    return problems


def _decision_problems(decision: Any, tool_name: str, allowed: Iterable[str], tools: Mapping[str, Any], where: str) -> list[str]:
    allowed = list(allowed)
    if not isinstance(decision, Mapping):
        return [f'{where} must be an object with a "type"']
    kind = decision.get("type")
    if kind not in DECISION_TYPES:
        return [f"{where}: type {kind!r} is not a decision (one of {', '.join(DECISION_TYPES)})"]
    if kind not in allowed:
        return [f"{where}: {kind!r} is not allowed for {tool_name} (allowed: {', '.join(allowed)})"]
    if kind == "edit":
        return _edit_problems(decision.get("edited_action"), tool_name, tools.get(tool_name), where)
    message = decision.get("message")
    if kind == "respond" and not isinstance(message, str):
        return [f'{where}: a "respond" decision needs a "message" (the tool\'s answer, as text)']
    if message is not None and not isinstance(message, str):
        return [f'{where}: "message" must be text']
    if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
        return [f'{where}: "message" is longer than {MAX_MESSAGE_CHARS} characters']
    return []


def _edit_problems(action: Any, tool_name: str, tool: Any, where: str) -> list[str]:
    if not isinstance(action, Mapping) or not isinstance(action.get("args"), Mapping):
        return [f'{where}: an "edit" needs "edited_action": {{"name": ..., "args": {{...}}}}']
    if action.get("name", tool_name) != tool_name:
        return [f"{where}: an edit may change {tool_name}'s arguments, not the tool (got {action.get('name')!r})"]
    schema = getattr(tool, "tool_call_schema", None)
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return []  # no tool known, or a JSON-schema tool: the tool checks its own arguments when it runs
    try:
        schema.model_validate(dict(action["args"]))
    except ValidationError as exc:
        return [f"{where}: edited arguments for {tool_name}: {_first_errors(exc)}"]
    return []


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        field = ".".join(str(p) for p in error.get("loc", ())) or "(arguments)"
        parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _allowed_by_schema(schema: Any) -> list[str]:
    """The decision types a per-call interrupt's ``response_schema`` (JSON schema) lists; all of them if it says none."""
    found: list[str] = []

    def visit(node: Any, depth: int = 0) -> None:
        if depth > 8 or not isinstance(node, Mapping):
            return
        kind = node.get("properties", {}).get("type") if isinstance(node.get("properties"), Mapping) else None
        if isinstance(kind, Mapping):
            values = [kind["const"]] if "const" in kind else list(kind.get("enum") or [])
            found.extend(v for v in values if v in DECISION_TYPES and v not in found)
        for key in ("oneOf", "anyOf"):
            for branch in node.get(key) or []:
                visit(branch, depth + 1)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(schema, Mapping):
            visit((schema.get("$defs") or {}).get(ref.rsplit("/", 1)[-1]), depth + 1)

    visit(schema)
    return found or list(DECISION_TYPES)
