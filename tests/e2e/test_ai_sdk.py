"""The Vercel AI SDK (`ai` from npm, pinned by tests/js/package-lock.json) against a real gunicorn.

Node runs the SDK's own code: a headless ``Chat`` (useChat's logic without
React), or its transport with ``readUIMessageStream({terminateOnError})``,
which throws on any protocol slip. The service streams from the local
OpenAI-protocol upstream through the real ChatOpenAI. Each protection has
its negative control: a stream missing ``text-start`` makes the same SDK
throw; with ``on_disconnect=cancel`` a stopped chat cannot be resumed
whole; a buffering nginx delivers everything at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.conftest import openai_env
from tests.support.node import installed_version, require_js_clients, run_ui_chat
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.proxies import Nginx, Variant
from tests.support.redis_server import RedisServer
from tests.support.replay import replay_server, without_blocks
from tests.support.servers import GunicornServer

pytestmark = pytest.mark.e2e

KEY = "ai-sdk-key-0123456789"
AUTH = {"API_KEY": KEY}


@pytest.fixture(scope="module")
def service(upstream_server: OpenAIUpstream, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    require_js_clients()
    store = tmp_path_factory.mktemp("threads") / "threads.db"  # ?agent=1 chats are threads: none outlives the run
    env = openai_env(
        upstream_server,
        WEBAPP_API_KEYS=KEY,
        WEBAPP_HEARTBEAT_SECONDS="1",
        WEBAPP_AGENT_SLOW_TOOL_SECONDS="0",
        WEBAPP_THREAD_STORE=f"sqlite:///{store}",
    )
    server = GunicornServer(artifacts, env=env, name="ai-sdk")
    yield server.start()
    server.stop()


def test_the_sdk_that_runs_is_the_pinned_one(service: GunicornServer) -> None:
    assert installed_version("ai") == "6.0.326"


def test_use_chat_gets_the_whole_answer(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=8, interval=0.02)
    code, out = run_ui_chat("chat", service.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "plain"})
    assert code == 0, out
    assert out["status"] == "ready" and out["error"] is None
    assert out["text"] == answer_text(8)
    assert out["finished"] == [{"isAbort": False, "isDisconnect": False, "isError": False, "finishReason": "stop"}]


def test_an_agent_with_tools_passes_the_sdks_protocol_checks(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=5, interval=0.01, tool_calls=(("get_current_time", "{}"), ("calculate", '{"expression": "6*7"}')))
    code, out = run_ui_chat(
        "strict", service.url + "/api/ui/chat?agent=1", "What time is it, and what is 6*7?", env={**AUTH, "CHAT_ID": "agent"}
    )
    assert code == 0, out
    parts = out["message"]["parts"]
    tools = {p["type"]: p for p in parts if p["type"].startswith("tool-")}
    assert set(tools) == {"tool-get_current_time", "tool-calculate"}
    assert tools["tool-calculate"]["state"] == "output-available" and tools["tool-calculate"]["input"] == {"expression": "6*7"}
    assert tools["tool-calculate"]["output"] == "42"
    assert [p["type"] for p in parts].count("step-start") == 2 and parts[-1]["type"] == "text"
    assert out["text"] == answer_text(5)


def test_a_failure_mid_answer_puts_the_chat_in_error_with_a_safe_message(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=10, interval=0.01, drop_at=3)
    code, out = run_ui_chat("chat", service.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "failing"})
    assert code == 0, out
    assert out["status"] == "error" and out["finished"][0]["isError"] is True
    assert out["error"] == "The connection to the model provider failed."
    assert out["text"] == answer_text(3)


def test_stop_then_resume_gets_the_whole_answer_from_one_generation(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=30, interval=0.05)
    code, out = run_ui_chat("cut", service.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "cut-resume"})
    assert code == 0, out
    assert out["partial"] and len(out["partial"]) < len(answer_text(30))  # it really was cut
    assert out["text"] == answer_text(30) and out["messageCount"] == 2  # resumed whole, swapped in place
    assert len(upstream.requests) == 1  # one producer, nothing re-run
    code, again = run_ui_chat("resume", service.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "cut-resume"})
    assert code == 0 and again == {"resumed": False}  # 204 once the client has it all


@pytest.mark.parametrize("cookies", ["1", "0"], ids=["kept-as-a-browser-does", "negative-control-no-cookie"])
def test_with_keys_off_the_sdk_resumes_the_chat_of_its_own_browser(
    cookies: str, gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream
) -> None:
    require_js_clients()
    app = gunicorn(env=openai_env(upstream), name="keys-off")
    upstream.script = Script(tokens=30, interval=0.05)
    code, out = run_ui_chat("cut", app.url + "/api/ui/chat", env={"CHAT_ID": "keys-off", "KEEP_COOKIES": cookies})
    assert code == 0, out
    assert out["partial"] and len(out["partial"]) < len(answer_text(30))  # it really was cut
    if cookies == "1":
        assert out["text"] == answer_text(30) and out["messageCount"] == 2  # its browser id found its chat
    else:  # without the cookie the resume is a stranger's: 204, the answer stays cut
        assert len(out["text"]) < len(answer_text(30))
    assert len(upstream.requests) == 1


def test_negative_control_with_cancel_on_disconnect_the_resumed_answer_is_cut(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream
) -> None:
    require_js_clients()
    app = gunicorn(env=openai_env(upstream, WEBAPP_API_KEYS=KEY, WEBAPP_ON_DISCONNECT="cancel"), name="cancel")
    upstream.script = Script(tokens=30, interval=0.05)
    code, out = run_ui_chat("cut", app.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "cut-cancel"})
    assert code == 0, out
    assert out["text"] != answer_text(30) and len(out["text"]) < len(answer_text(30))
    assert upstream.wait_for_requests(1)[0].client_closed_at is not None  # the stop cancelled the producer


def test_resume_on_another_instance_sharing_redis(
    gunicorn: Callable[..., GunicornServer], upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path).start()
    try:
        env = openai_env(upstream, WEBAPP_API_KEYS=KEY, WEBAPP_STREAM_STORE=redis_server.url)
        one, two = gunicorn(env=env, name="one"), gunicorn(env=env, name="two")
        upstream.script = Script(tokens=30, interval=0.05)
        code, out = run_ui_chat("cut", one.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "moving", "RESUME_API": two.url + "/api/ui/chat"})
        assert code == 0, out
        assert out["text"] == answer_text(30) and len(upstream.requests) == 1
        assert "/api/ui/chat/moving/stream" in two.log() and "/api/ui/chat/moving/stream" not in one.log()
        code, again = run_ui_chat("resume", one.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "moving"})
        assert code == 0 and again == {"resumed": False}  # delivered on instance two: 204 on instance one too
    finally:
        redis_server.stop()


def test_through_the_shipped_nginx_text_arrives_as_it_is_made(service: GunicornServer, upstream: OpenAIUpstream, tmp_path: Path) -> None:
    upstream.script = Script(tokens=20, interval=0.05)
    proxy = Nginx(tmp_path, service.port).start()
    try:
        code, out = run_ui_chat("strict", proxy.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "nginx"})
    finally:
        proxy.stop()
    assert code == 0 and out["text"] == answer_text(20), out
    assert out["firstTextMs"] < out["endMs"] - 500  # about 1 s of tokens: the first came well before the end


def test_negative_control_a_buffering_nginx_delivers_it_all_at_the_end(
    service: GunicornServer, upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    upstream.script = Script(tokens=20, interval=0.05)
    variant = Variant(
        remove=["proxy_buffering off;", "proxy_http_version 1.1;"],
        add_after={"proxy_cache off;": "proxy_ignore_headers X-Accel-Buffering;"},
    )
    proxy = Nginx(tmp_path, service.port, variant).start()
    try:
        code, out = run_ui_chat("strict", proxy.url + "/api/ui/chat", env={**AUTH, "CHAT_ID": "buffered"})
    finally:
        proxy.stop()
    assert code == 0 and out["text"] == answer_text(20), out
    assert out["firstTextMs"] > out["endMs"] - 200


def test_negative_control_the_sdk_throws_on_a_stream_missing_text_start(service: GunicornServer, upstream: OpenAIUpstream) -> None:
    upstream.script = Script(tokens=4, interval=0.01)
    body = {"id": "recorded", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    recorded = httpx.post(service.url + "/api/ui/chat", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30).content
    assert b'"type":"text-start"' in recorded
    broken = without_blocks(recorded, lambda block: b'"type":"text-start"' in block)
    with replay_server(broken) as url:
        code, out = run_ui_chat("strict", url + "/api/ui/chat")
    with replay_server(recorded) as url:  # the same server with the stream as sent: accepted
        good_code, good = run_ui_chat("strict", url + "/api/ui/chat")
    assert code == 1 and "text-start" in out["thrown"], out
    assert good_code == 0 and good["text"] == answer_text(4), good


EMAIL = "please send email to bob about lunch"
SDKS = {"ai": "6.0.326", "ai7": "7.0.173"}


@pytest.fixture(scope="module")
def agent_service(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """The demo agent on the scripted model, two gevent workers, its chats' threads in SQLite: any worker answers."""
    require_js_clients()
    store = tmp_path_factory.mktemp("threads") / "threads.db"
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_TTFT_MS": "0",
        "WEBAPP_SCRIPTED_INTERVAL_MS": "5",
        "WEBAPP_API_KEYS": KEY,
        "WEBAPP_THREAD_STORE": f"sqlite:///{store}",
        "GUNICORN_WORKERS": "2",
        "WEBAPP_LOG_LEVEL": "INFO",
    }
    server = GunicornServer(artifacts, env=env, name="ai-sdk-approvals")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.parametrize("package", sorted(SDKS))
def test_the_sdks_approval_flow_runs_an_approved_call_once_and_denies_a_denied_one(agent_service: GunicornServer, package: str) -> None:
    assert installed_version(package) == SDKS[package]
    url = agent_service.url + "/api/ui/chat?agent=1"
    for mode, state, output in (("approve", "output-available", "queued"), ("deny", "output-denied", None)):
        sent_before = agent_service.log().count("email_queued")
        code, out = run_ui_chat(mode, url, EMAIL, env={**AUTH, "AI_PACKAGE": package, "CHAT_ID": f"{package}-{mode}"})
        assert code == 0 and out["error"] is None, out
        assert [a["type"] for a in out["first"]["asked"]] == ["tool-send_email"], out["first"]  # approval-requested, nothing run
        assert out["roles"] == ["user", "assistant"], out  # the answer continued the same assistant message
        assert [(t["state"], t["output"]) for t in out["tools"]] == [(state, output)], out["tools"]
        assert [f["finishReason"] for f in out["finished"]] == ["tool-calls", "stop"], out["finished"]
        assert ("not today" in out["text"]) == (mode == "deny")  # the model heard the user's reason
        assert agent_service.log().count("email_queued") - sent_before == (1 if mode == "approve" else 0)


def test_negative_control_an_approval_in_a_step_of_its_own_is_never_answered(agent_service: GunicornServer) -> None:
    # The first turn as the service sends it, and the same with the approval request moved into a new step
    # (as this surface first sent it): the SDK looks for answered approvals after the last step-start only.
    response = httpx.post(
        agent_service.url + "/api/ui/chat?agent=1",
        headers={"authorization": f"Bearer {KEY}"},
        timeout=30,
        json={"id": "recorded", "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": EMAIL}]}]},
    )
    recorded = response.content
    assert b'"type":"tool-approval-request"' in recorded
    own_step = recorded.replace(
        b'data: {"type":"tool-approval-request"', b'data: {"type":"start-step"}\n\ndata: {"type":"tool-approval-request"'
    )
    answered: dict[str, int] = {}
    for name, body in (("as sent", recorded), ("own step", own_step)):
        posts: list[bytes] = []
        with replay_server(body, posts=posts) as url:
            code, out = run_ui_chat("approve", url + "/api/ui/chat", EMAIL, env={"APPROVAL_WAIT_MS": "3000"}, timeout=15)
        assert "first" in out and out["first"]["asked"], (name, code, out)  # the request reached the SDK both times
        answered[name] = len(posts) - 1
    assert answered == {"as sent": 1, "own step": 0}, answered
