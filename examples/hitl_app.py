"""A Flask app whose agent asks before it sends an email: threads, approvals, and the AI SDK's approval flow.

The agent is LangChain's ``create_agent`` with ``HumanInTheLoopMiddleware``
on ``send_email``, checkpointed in SQLite, so a thread that waits for an
answer survives a restart. Two ways in:

- SSE for any client (curl, EventSource, the playground):

      gunicorn -c conf/gunicorn.conf.py -w 1 examples.hitl_app:app
      T=$(curl -s -X POST localhost:8000/threads | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
      curl -N localhost:8000/threads/$T/events -H 'Content-Type: application/json' \\
           -d '{"message": "please send email to bob about lunch"}'
      #  ... event: interrupt (the call and its allowed decisions), then event: end {"finish_reason": "interrupt"}
      curl -N localhost:8000/threads/$T/events -H 'Content-Type: application/json' \\
           -d '{"resume": {"decisions": [{"type": "approve"}]}}'
      #  ... event: tool_result {"content": "sent to bob", ...}, the model's answer, event: end

- the Vercel AI SDK's ``useChat`` at ``POST /ui/chat``, with
  ``sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses``:
  the paused call arrives as ``tool-approval-request``, and
  ``addToolApprovalResponse`` sends the answer. The chat id names the thread.

One run per thread: the lease is in-process here (one worker). With several
workers or hosts, give ``Streaming`` a ``RedisStore`` (``store=``), whose
Redis holds the leases too. Who may use a thread is the app's to decide:
here the id, random and handed out by the server, is the only key to it,
and ``X-User`` stands in for your login on ``/ui/chat``.

The thread list and the checkpoints share one SQLite file
(``EXAMPLE_THREADS_DB``, default ``threads.db``): stop the server while a
thread waits, start it again, and the answer resumes it.

With ``OPENAI_API_KEY`` set (and ``OPENAI_BASE_URL`` for any compatible
server) the agent runs on ChatOpenAI; without, on the embedded scripted
model, which calls ``send_email`` when a prompt names it.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from typing import Any

from flask import Flask, abort, request
from flask.typing import ResponseReturnValue
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

from examples.models import build_model
from uncut.flask import Streaming, thread_response, ui_thread_response
from uncut.ui_request import InvalidUIRequest, parse_ui_chat

OUTBOX: list[dict[str, str]] = []  # what "was sent": nothing leaves the machine


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email."""
    OUTBOX.append({"to": to, "subject": subject, "body": body})
    return f"sent to {to}"


# One connection, shared by the greenlets of this worker: SqliteSaver serializes its use with a lock.
DATABASE = os.environ.get("EXAMPLE_THREADS_DB", "threads.db")
checkpoints = SqliteSaver(sqlite3.connect(DATABASE, check_same_thread=False))
agent = create_agent(
    build_model(),
    [send_email],
    checkpointer=checkpoints,
    middleware=[HumanInTheLoopMiddleware(interrupt_on={"send_email": True})],
    system_prompt="Send emails with the send_email tool when asked.",
)

app = Flask(__name__)
Streaming(app, heartbeat_seconds=float(os.environ.get("EXAMPLE_HEARTBEAT_SECONDS", "15")))
# The threads this app handed out, beside their checkpoints: a restart keeps both.
registry = sqlite3.connect(DATABASE, check_same_thread=False, isolation_level=None)
registry.execute("CREATE TABLE IF NOT EXISTS example_threads (thread_id TEXT PRIMARY KEY)")


@app.post("/threads")
def new_thread() -> ResponseReturnValue:
    thread_id = secrets.token_hex(16)
    registry.execute("INSERT INTO example_threads VALUES (?)", (thread_id,))
    return {"thread_id": thread_id}, 201


@app.post("/threads/<thread_id>/events")
def thread_events(thread_id: str) -> ResponseReturnValue:
    if registry.execute("SELECT 1 FROM example_threads WHERE thread_id = ?", (thread_id,)).fetchone() is None:
        abort(404)
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict) or ("message" in body) == ("resume" in body):
        abort(400, description='send {"message": "..."} or {"resume": {"decisions": [...]}}')
    if "resume" in body:  # checked against the pending calls before anything runs: a bad answer is a 400
        return thread_response(agent, thread_id, resume=body["resume"])
    if not isinstance(body["message"], str) or not body["message"].strip():
        abort(400, description='"message" must be a non-empty string')
    return thread_response(agent, thread_id, input={"messages": [{"role": "user", "content": body["message"]}]})


@app.post("/ui/chat")
def ui_chat() -> ResponseReturnValue:
    try:
        chat = parse_ui_chat(request.get_json(silent=True), max_messages=50, max_message_chars=20_000)
    except InvalidUIRequest as exc:
        abort(400, description=str(exc))
    return ui_thread_response(agent, chat, owner=request.headers.get("X-User", "anonymous"))


@app.get("/")
def index() -> ResponseReturnValue:
    return 'POST /threads, then POST /threads/<id>/events with {"message"} or {"resume"}; or useChat at /ui/chat.\n'
