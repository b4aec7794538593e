"""A Flask app that streams a LangChain agent with tools: ``create_agent`` in, rich SSE out.

The graph is handed to ``sse_response`` like any runnable; the library sees
it is a LangGraph graph and streams its tool calls, tool results, steps and
text. The weather tool is slow on purpose: heartbeats keep proxies from
closing the stream while it runs, and a client that leaves stops it.

    gunicorn -c conf/gunicorn.conf.py examples.agent_app:app
    curl -N localhost:8000/ask -H 'Content-Type: application/json' -d '{"question": "What is the weather in Paris?"}'

With ``OPENAI_API_KEY`` set (and ``OPENAI_BASE_URL`` for any compatible
server) the agent runs on ChatOpenAI; without, on the embedded scripted
model, which calls tools too.
"""

from __future__ import annotations

import os
import time

from flask import Flask, abort, request
from flask.typing import ResponseReturnValue
from langchain.agents import create_agent
from langchain_core.tools import tool

from examples.models import build_model
from uncut.flask import sse_response


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    time.sleep(float(os.environ.get("EXAMPLE_WEATHER_SECONDS", "2")))  # a slow API: cooperative under gevent
    return f"It is sunny and 21 °C in {city}."


app = Flask(__name__)
agent = create_agent(build_model(), [get_weather], system_prompt="Answer weather questions with the get_weather tool.")


@app.post("/ask")
def ask() -> ResponseReturnValue:
    question = (request.get_json(silent=True) or {}).get("question")
    if not isinstance(question, str) or not question.strip():
        abort(400, description='send a non-empty "question"')
    return sse_response(agent, {"messages": [{"role": "user", "content": question}]})


@app.get("/")
def index() -> ResponseReturnValue:
    return 'POST /ask with {"question": ...} to stream the agent.\n'
