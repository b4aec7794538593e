"""uncut's Agent Server API on the bench agent, for ``python -m bench.agent_server``: one gunicorn gevent worker.

    gunicorn -c conf/gunicorn.conf.py bench.apps.agent_server_app:app   # the API at /langgraph

The graph is ``bench/apps/agent_graph.py`` (the one ``langgraph dev`` serves
from ``bench/apps/langgraph.json``), its checkpoints in an ``InMemorySaver``,
threads and runs in the default in-memory records, streams in the default
in-memory store: the same state ``langgraph dev`` keeps in its process.
Streaming options are the library's defaults (``StreamOptions()``), adaptive
admission included; ``BENCH_ADAPTIVE_ADMISSION=false`` turns it off for an A/B.
The app is built in the worker, after gevent has patched the standard library.
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify
from langgraph.checkpoint.memory import InMemorySaver

from bench.apps.agent_graph import graph
from uncut.agent_server import AgentServer
from uncut.flask import agent_server_blueprint
from uncut.options import StreamOptions, parse_bool
from uncut.streams import Streams

options = StreamOptions(adaptive_admission=parse_bool(os.environ.get("BENCH_ADAPTIVE_ADMISSION", "true")))
server = AgentServer({"agent": graph}, Streams(options), checkpointer=InMemorySaver())

app = Flask(__name__)
app.register_blueprint(agent_server_blueprint(server, url_prefix="/langgraph"))


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok", app="agent-server")
