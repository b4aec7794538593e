"""The service with one extra route for the agents' negative control, for gunicorn to load.

``/api/agent/text-only-events`` streams the same demo agent as
``/api/agent/events``, but hidden inside a plain generator runnable: the
relay cannot tell it is a graph, so it gets what ``runnable.stream(input)``
gives any runnable (the graph's node updates) and keeps only text, as the
library did before graphs were first-class. gunicorn imports this module in
the worker, after gevent has patched the standard library.
"""

from __future__ import annotations

from typing import Any, Iterator

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from langchain_core.runnables import RunnableGenerator

from webapp.api import service
from webapp.api.reading import chat_messages
from wsgi import app

bp = Blueprint("text_only_agent", __name__)


@bp.post("/api/agent/text-only-events")
def text_only_events() -> ResponseReturnValue:
    from uncut.flask import sse_response

    agent = service().agent

    def as_plain_runnable(inputs: Iterator[Any]) -> Iterator[Any]:
        for value in inputs:
            yield from agent.stream(value)

    messages = chat_messages(request.get_json())
    return sse_response(RunnableGenerator(as_plain_runnable), {"messages": messages})


app.register_blueprint(bp)

__all__ = ["app"]
