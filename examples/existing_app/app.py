"""An existing Flask app (pages, a form, a JSON API) that gains a streaming route.

The lines marked "+ streaming" are all it took:

    gunicorn -c conf/gunicorn.conf.py examples.existing_app.app:app                  # gevent
    gunicorn -c conf/gunicorn.conf.py -k gthread --threads 16 examples.existing_app.app:app
    flask --app examples.existing_app.app run                                        # dev server
"""

from __future__ import annotations

from flask import Flask, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from examples.existing_app.chain import build_chain
from uncut.flask import Streaming, sse_response  # + streaming


def read_doc() -> str:
    body = request.get_json(silent=True) if request.is_json else request.form
    doc = (body or {}).get("doc")
    if not isinstance(doc, str) or not doc.strip():
        abort(400, description='send a non-empty "doc"')
    return doc


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()  # e.g. FLASK_UNCUT_HEARTBEAT_SECONDS=10
    chain = build_chain()
    Streaming(app)  # + streaming: app-wide heartbeat, limits and callbacks

    @app.get("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html")

    @app.post("/summarize")
    def summarize() -> ResponseReturnValue:
        return render_template("summary.html", summary=chain.invoke({"doc": read_doc()}))

    @app.post("/api/summarize")
    def summarize_json() -> ResponseReturnValue:
        return jsonify(summary=chain.invoke({"doc": read_doc()}))

    @app.post("/api/summarize/stream")  # + streaming
    def summarize_stream() -> ResponseReturnValue:  # + streaming
        return sse_response(chain, {"doc": read_doc()})  # + streaming

    return app


app = create_app()
