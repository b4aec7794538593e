"""LangGraph's Agent Server API from Django or a bare WSGI app: ``langgraph_sdk``, ``useStream`` and ``RemoteGraph`` talk to it.

One small agent (``create_agent``, graph ``agent``) with an in-memory
checkpointer, served at ``/langgraph`` either way:

    gunicorn -c conf/gunicorn.conf.py examples.agent_server:wsgi_app
    DJANGO_SETTINGS_MODULE=examples.agent_server gunicorn -c conf/gunicorn.conf.py 'examples.agent_server:django_app()'

    from langgraph_sdk import get_sync_client
    client = get_sync_client(url="http://localhost:8000/langgraph", api_key=None)
    thread = client.threads.create()
    for part in client.runs.stream(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]},
                                   stream_mode="messages-tuple"):
        print(part.event, part.data)

For Django this module is also the settings and the URLconf (a project adds
``agent_server_urls(...)`` to its own ``urlpatterns`` the same way). The
server is built at the first request, in the worker, on the framework's
``Streams``. Keep one gunicorn worker: the checkpointer and the API's
records live in the process (``SqlRecords`` and a SQL checkpointer share them).

With ``OPENAI_API_KEY`` set the agent runs on ChatOpenAI; without, on the
scripted model, whose answer length and pace ``EXAMPLE_TOKENS`` and
``EXAMPLE_INTERVAL_SECONDS`` set.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable, Iterable

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.memory import InMemorySaver

from uncut import Streams
from uncut.agent_server import AgentServer
from uncut.django import agent_server_urls, streams
from uncut.wsgi import agent_server_app, default_streams


def build_model() -> BaseChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        from examples.models import build_model as openai_or_scripted

        return openai_or_scripted()
    from uncut.scripted import ScriptedChatModel

    tokens = os.environ.get("EXAMPLE_TOKENS")
    return ScriptedChatModel(
        tokens=int(tokens) if tokens else None, ttft=0.05, interval=float(os.environ.get("EXAMPLE_INTERVAL_SECONDS", "0.05"))
    )


agent = create_agent(build_model(), [], system_prompt="Answer in a few plain sentences.", checkpointer=InMemorySaver())


def build_server(streams: Streams) -> AgentServer:
    return AgentServer({"agent": agent}, streams)


# -- plain WSGI: the API at /langgraph, its own Streams (uncut.wsgi's default) ------------------------

wsgi_app = agent_server_app(lambda: build_server(default_streams()), prefix="/langgraph")

# -- Django: settings, URLconf and the WSGI entry point --------------------------------------------

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32)  # no sessions or signed cookies here
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", "django.middleware.common.CommonMiddleware"]
USE_TZ = True
UNCUT = {"HEARTBEAT_SECONDS": float(os.environ.get("EXAMPLE_HEARTBEAT_SECONDS", "15"))}

django_urlpatterns = agent_server_urls(lambda: build_server(streams()), prefix="langgraph/")
urlpatterns = django_urlpatterns


def django_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Django's WSGI application with this module as its settings (gunicorn: ``'examples.agent_server:django_app()'``)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()
