"""The relay as a library inside someone else's Flask app: sse_response, text_response, Streaming."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from flask import Flask, request
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableGenerator

import uncut.flask
from uncut.callbacks import AsyncCallbackError
from uncut.flask import Streaming, sse_response, text_response
from uncut.scripted import ScriptedChatModel, script_tokens
from uncut.sse import HEARTBEAT, ServerSentEvent, parse_stream

PROMPT = ChatPromptTemplate.from_messages([("system", "Summarize."), ("user", "{doc}")])


def chain(**model_knobs: Any):
    return PROMPT | ScriptedChatModel(**{"ttft": 0, "interval": 0, **model_knobs}) | StrOutputParser()


def events(body: bytes) -> list[ServerSentEvent]:
    return [e for e in parse_stream([body]) if isinstance(e, ServerSentEvent)]


def plain_app(**route_kwargs: Any) -> Flask:
    """An app that knows nothing of this project but two imports."""
    app = Flask(__name__)

    @app.post("/summarize")
    def summarize():
        doc = request.get_json()["doc"]
        return sse_response(chain(tokens=6), {"doc": doc}, **route_kwargs)

    @app.post("/summarize.txt")
    def summarize_text():
        return text_response(chain(tokens=6), {"doc": request.get_json()["doc"]})

    return app


def test_a_plain_flask_app_streams_with_defaults() -> None:
    client = plain_app().test_client()
    response = client.post("/summarize", json={"doc": "gevent"})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.data.startswith(b"retry: 3000\n")
    got = events(response.data)
    assert [e.event for e in got] == ["start"] + ["token"] * 6 + ["end"]
    assert "".join(e.json()["text"] for e in got[1:-1]) == "".join(script_tokens("gevent", 6))
    assert client.post("/summarize.txt", json={"doc": "gevent"}).data.startswith(b'You asked: "gevent".')


def test_the_package_exports_the_same_function() -> None:
    assert {"Streaming", "sse_response", "text_response", "openai_response"} <= set(uncut.flask.__all__)
    assert uncut.flask.sse_response is sse_response


@pytest.mark.parametrize(
    ("chunks", "texts"),
    [
        (["a", "b"], ["a", "b"]),
        ([{"text": "a"}, {"answer": "b"}, {"unrelated": 1}], ["a", "b"]),
        ([AIMessageChunk(content="a"), AIMessageChunk(content=[{"type": "text", "text": "b"}, {"type": "tool_call"}])], ["a", "b"]),
        (["", "a", None], ["a"]),
    ],
    ids=["strings", "dicts", "message-chunks", "empty-skipped"],
)
def test_any_runnable_chunk_shape_becomes_token_events(chunks: list[Any], texts: list[str]) -> None:
    def produce(_: Iterator[Any]) -> Iterator[Any]:
        yield from chunks

    app = Flask(__name__)

    @app.get("/")
    def view():
        return sse_response(RunnableGenerator(produce), "x")

    got = events(app.test_client().get("/").data)
    assert [e.json()["text"] for e in got if e.event == "token"] == texts and got[-1].event == "end"


def test_extension_defaults_apply_without_view_arguments() -> None:
    app = Flask(__name__)
    Streaming(app, heartbeat_seconds=0.1, retry_ms=1234, metadata={"app": "summarizer"})

    @app.get("/")
    def view():
        return sse_response(chain(tokens=3, pause=0.5, pause_at=1), {"doc": "d"})

    body = app.test_client().get("/").data
    assert body.startswith(b"retry: 1234\n") and body.count(HEARTBEAT) >= 2
    assert events(body)[0].json()["app"] == "summarizer"


def test_app_config_overrides_the_extension_in_init_app() -> None:
    app = Flask(__name__)
    app.config["UNCUT_RETRY_MS"] = "777"
    streaming = Streaming(retry_ms=1)
    streaming.init_app(app)

    @app.get("/")
    def view():
        return sse_response(chain(tokens=1), {"doc": "d"})

    assert app.test_client().get("/").data.startswith(b"retry: 777\n")


@pytest.mark.parametrize(
    ("key", "value"), [("UNCUT_HEARTBEAT_SECONDS", "often"), ("UNCUT_HEARTBEAT_SECONDS", -1), ("UNCUT_WATCH_DISCONNECT", "maybe")]
)
def test_bad_app_config_is_refused_at_init_naming_the_key(key: str, value: Any) -> None:
    app = Flask(__name__)
    app.config[key] = value
    with pytest.raises(ValueError, match="UNCUT_"):
        Streaming(app)


def test_per_call_options_override_the_app_defaults() -> None:
    app = Flask(__name__)
    Streaming(app, heartbeat_seconds=300, retry_ms=1)

    @app.get("/")
    def view():
        return sse_response(chain(tokens=3, pause=0.5, pause_at=1), {"doc": "d"}, heartbeat_seconds=0.1)

    body = app.test_client().get("/").data
    assert body.startswith(b"retry: 1\n"), "the app default still applies where the call is silent"
    assert body.count(HEARTBEAT) >= 2, "the per-call heartbeat interval wins"


class RaisingHandler(BaseCallbackHandler):
    raise_error = True

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        raise RuntimeError("the metrics backend is down")


def test_a_chain_whose_callback_raises_still_streams_to_the_end() -> None:
    app = Flask(__name__)
    Streaming(app, callbacks=[RaisingHandler()])

    @app.get("/app-wide")
    def app_wide():
        return sse_response(chain(tokens=5), {"doc": "d"})

    @app.get("/per-call")
    def per_call():
        return sse_response(chain(tokens=5), {"doc": "d"}, config={"callbacks": [RaisingHandler()]})

    client = app.test_client()
    for path in ("/app-wide", "/per-call"):
        got = events(client.get(path).data)
        assert [e.event for e in got].count("token") == 5 and got[-1].event == "end", path


def test_negative_control_the_same_callback_unwrapped_aborts_the_chain() -> None:
    with pytest.raises(RuntimeError, match="metrics backend"):
        list(chain(tokens=5).stream({"doc": "d"}, config={"callbacks": [RaisingHandler()]}))


class AsyncOnly(AsyncCallbackHandler):
    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        pass


def test_an_async_handler_is_refused_before_streaming_starts() -> None:
    with pytest.raises(AsyncCallbackError, match="BaseCallbackHandler"):
        Streaming(callbacks=[AsyncOnly()])

    calls: list[str] = []

    class Counting(ScriptedChatModel):
        def _stream(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            calls.append("called")
            yield from super()._stream(*args, **kwargs)

    app = Flask(__name__)
    with app.test_request_context("/"):
        with pytest.raises(AsyncCallbackError):
            sse_response(Counting(), "x", callbacks=[AsyncOnly()])
        with pytest.raises(AsyncCallbackError):
            sse_response(Counting(), "x", config={"callbacks": [AsyncOnly()]})
    assert calls == [], "the model must not be called"
