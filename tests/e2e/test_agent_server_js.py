"""LangGraph's own JavaScript clients against the Agent Server API at /langgraph, under real gunicorn (gevent).

Real parts: ``@langchain/langgraph-sdk`` (its ``Client`` in Node, and
``useStream`` from its React entry in Debian's Chromium), React, all pinned
by tests/js/package-lock.json; the page is bundled here by the pinned
esbuild from the local node_modules and served from another loopback
origin, so every call is a real cross-origin one (WEBAPP_CORS_ORIGINS).
The demo agent (create_agent + HumanInTheLoopMiddleware) runs on the
scripted model with SQLite threads. A reload mid-answer rejoins the run
because the stream's ``Content-Location`` names it; the negative control
strips that header (tests/support/no_run_location_wsgi.py) and the reloaded
page never gets the answer.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.support.node import JS, installed_version, require_js_clients
from tests.support.proxies import require_binary
from tests.support.servers import GunicornServer

pytestmark = [pytest.mark.e2e]

EMAIL = "please send email to bob about lunch"
APPROVE = {"decisions": [{"type": "approve"}]}
# Fast for the Node client; for the browser slow enough that a reload lands mid-answer (about 20 tokens, 5 s).
FAST = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "5", "GUNICORN_WORKERS": "1"}
SLOW = {**FAST, "WEBAPP_SCRIPTED_INTERVAL_MS": "250"}
PINNED = {"@langchain/langgraph-sdk": "1.15.0", "@langchain/core": "1.4.0", "react": "19.3.1", "react-dom": "19.3.1", "esbuild": "0.28.2"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_RUN_LOCATION_APP = "tests.support.no_run_location_wsgi:app"


def require_langgraph_js() -> str:
    """Node's path, once the pinned LangGraph SDK, React and esbuild are installed too (CI fails, elsewhere skips)."""
    node = require_js_clients()
    missing = [name for name in PINNED if not (JS / "node_modules" / name / "package.json").exists()]
    if missing:
        message = f"{', '.join(missing)} not installed: npm ci --prefix tests/js (scripts/test does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def api(server: GunicornServer) -> str:
    return f"{server.url}/langgraph"


def emails_sent(server: GunicornServer) -> int:
    return sum(1 for line in server.log().splitlines() if '"message": "email_queued"' in line)


def text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict) and part.get("type") == "text")


def final_answer(server: GunicornServer, thread_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The thread's last AI message text, and its messages, from the server's state."""
    state = httpx.get(f"{api(server)}/threads/{thread_id}/state", timeout=10).json()
    messages = state["values"]["messages"]
    return text([m for m in messages if m["type"] == "ai"][-1]), messages


def wait_for_runs_to_end(server: GunicornServer, thread_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        runs = httpx.get(f"{api(server)}/threads/{thread_id}/runs", timeout=10).json()
        if runs and all(r["status"] not in ("pending", "running") for r in runs):
            return runs
        assert time.monotonic() < deadline, f"runs still going after {timeout}s: {runs}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    require_langgraph_js()
    store = tmp_path_factory.mktemp("agent-server-js") / "threads.db"
    server = GunicornServer(artifacts, env={**FAST, "WEBAPP_THREAD_STORE": f"sqlite:///{store}"}, name="agent-server-js")
    try:
        yield server.start()
    finally:
        server.stop()


# -- the Client, in Node ----------------------------------------------------------------------------


def run_client(server: GunicornServer, timeout: float = 40.0) -> tuple[int, list[dict[str, Any]]]:
    node = require_langgraph_js()
    process = subprocess.run(
        [node, str(JS / "langgraph_client.mjs"), api(server)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "TIMEOUT_MS": str(int(timeout * 1000) - 3000)},
    )
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no output from langgraph_client.mjs: {process.stderr[-2000:]}"
    return process.returncode, lines


def phase(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """A stream's parts as the SDK yielded them (not the run_created notes)."""
    return [line for line in lines if line.get("phase") == name and "event" in line and line["event"] != "run_created"]


def ai_text(parts: list[dict[str, Any]]) -> str:
    """The streamed text of the AI messages: ``messages`` events of messages-tuple mode, ``[chunk, metadata]``."""
    return "".join(text(p["data"][0]) for p in parts if p["event"] == "messages" and p["data"][0]["type"].startswith("AI"))


def test_the_packages_that_run_are_the_pinned_ones(served: GunicornServer) -> None:
    assert {name: installed_version(name) for name in PINNED} == PINNED


def test_the_js_client_streams_pauses_for_approval_resumes_once_and_joins(served: GunicornServer) -> None:
    before = emails_sent(served)
    code, lines = run_client(served)
    assert code == 0 and lines[-1].get("done"), lines[-1]
    done = lines[-1]
    thread_id = done["threadId"]

    # The first run: metadata first (naming the run Content-Location named), every part with an id, in order.
    first = phase(lines, "first")
    assert first[0]["event"] == "metadata" and first[0]["data"]["run_id"] == done["created"]["first"]["run_id"]
    assert done["created"]["first"]["thread_id"] == thread_id
    ids = [int(p["id"]) for p in first]
    assert ids == sorted(set(ids)), ids
    chunks = [p["data"] for p in first if p["event"] == "messages"]
    assert chunks and all(chunk[0]["type"] == "AIMessageChunk" and chunk[1]["langgraph_node"] for chunk in chunks)
    assert any(c["name"] == "send_email" for chunk in chunks for c in chunk[0].get("tool_call_chunks") or [])
    interrupts = [p["data"]["__interrupt__"] for p in first if p["event"] == "updates" and "__interrupt__" in p["data"]]
    assert len(interrupts) == 1 and interrupts[0][0]["value"]["action_requests"][0]["name"] == "send_email"
    assert {"values", "updates", "messages"} <= {p["event"] for p in first}
    paused = next(line for line in lines if line.get("phase") == "paused")["data"]
    assert paused["status"] == "interrupted" and [i["id"] for v in paused["interrupts"].values() for i in v] == [interrupts[0][0]["id"]]

    # Resumed: the email goes out once, the answer streams token by token and is the one the thread keeps.
    resumed = phase(lines, "resume")
    assert resumed[0]["event"] == "metadata" and resumed[0]["data"]["run_id"] == done["created"]["resume"]["run_id"]
    tokens = [text(p["data"][0]) for p in resumed if p["event"] == "messages" and p["data"][0]["type"] == "AIMessageChunk"]
    assert len([t for t in tokens if t]) > 5
    assert not any(p["event"] == "error" for p in lines if "event" in p)
    assert emails_sent(served) == before + 1
    state = next(line for line in lines if line.get("phase") == "state")["data"]
    messages = state["values"]["messages"]
    tools = [m for m in messages if m["type"] == "tool"]
    assert [(m["name"], m["content"]) for m in tools if m["name"] == "send_email"] == [("send_email", "queued")]
    answers = [m for m in messages if m["type"] == "ai" and text(m)]
    assert ai_text(resumed) == text(answers[0]) and "queued" in ai_text(resumed)

    # A background run, joined from the start, then again after one of its event ids: the rest, exactly.
    background = next(line for line in lines if line.get("phase") == "background")["data"]
    joined, rejoined = phase(lines, "join"), phase(lines, "rejoin")
    assert joined[0]["event"] == "metadata" and joined[0]["data"]["run_id"] == background["run_id"]
    assert ai_text(joined) == text(answers[-1]) and answers[-1] is not answers[0]
    after = int(next(line for line in lines if line.get("phase") == "rejoin_after")["data"])

    def seen(parts: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
        return [(p["id"], p["event"], p["data"]) for p in parts]

    assert rejoined and seen(rejoined) == seen([p for p in joined if int(p["id"]) > after])
    assert sorted(r["status"] for r in done["runs"]) == ["success"] * 3
    assert emails_sent(served) == before + 1  # the later run sent nothing more


# -- useStream, in Chromium -------------------------------------------------------------------------


class StaticSite:
    """The bundled page on its own loopback origin (a thread of this process)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def start(self) -> StaticSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    node = require_langgraph_js()
    out = tmp_path_factory.mktemp("use-stream-page")
    built = subprocess.run(
        [node, str(JS / "bundle.mjs"), str(JS / "use_stream_app.jsx"), str(out)], cwd=JS, capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr[-3000:]
    static = StaticSite(out).start()
    try:
        yield static
    finally:
        static.stop()


def browser_env(site: StaticSite, store: Path) -> dict[str, str]:
    return {**SLOW, "WEBAPP_THREAD_STORE": f"sqlite:///{store}", "WEBAPP_CORS_ORIGINS": site.origin}


@pytest.fixture(scope="module")
def slow(site: StaticSite, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    store = tmp_path_factory.mktemp("agent-server-js-browser") / "threads.db"
    server = GunicornServer(artifacts, env=browser_env(site, store), name="agent-server-js-browser")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def page(artifacts: Path) -> Iterator[Any]:
    chromium = require_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.path.realpath(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def open_page(page: Any, site: StaticSite, server: GunicornServer) -> None:
    page.goto(f"{site.origin}/index.html?api={api(server)}")
    page.wait_for_selector("#status")


def ask(page: Any, prompt: str) -> str:
    """Submit a message; the thread id the page got."""
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').dataset.thread !== ''")
    return str(page.get_attribute("#status", "data-thread"))


def wait_idle_with(page: Any, answer: str, timeout: float) -> None:
    page.wait_for_function(
        "want => document.querySelector('#status').dataset.loading === 'false' && document.querySelector('#answer').textContent === want",
        arg=answer,
        timeout=timeout * 1000,
    )


def renders(page: Any) -> list[str]:
    return list(page.evaluate("window.__renders"))


def stored_run(page: Any, thread_id: str) -> str | None:
    return page.evaluate("key => window.sessionStorage.getItem(key)", f"lg:stream:{thread_id}")


def test_use_stream_renders_tokens_the_interrupt_and_resumes_after_approval(
    page: Any,
    site: StaticSite,
    slow: GunicornServer,
    artifacts: Path,
) -> None:
    before = emails_sent(slow)
    open_page(page, site, slow)
    thread_id = ask(page, EMAIL)
    page.wait_for_selector('#interrupt .action[data-name="send_email"]')  # stream.interrupt: HITL's action request
    page.wait_for_function("document.querySelector('#status').dataset.loading === 'false'")
    assert emails_sent(slow) == before  # paused: nothing sent yet
    page.screenshot(path=str(artifacts / "use-stream-interrupt.png"), full_page=True)

    page.click("#approve")  # stream.submit(undefined, {command: {resume: ...}})
    page.wait_for_function("window.__renders.length >= 3")  # tokens are rendering
    runs = wait_for_runs_to_end(slow, thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]
    answer, messages = final_answer(slow, thread_id)
    wait_idle_with(page, answer, timeout=15)
    page.screenshot(path=str(artifacts / "use-stream-approved.png"), full_page=True)
    assert page.query_selector("#interrupt") is None
    assert page.inner_text("#error") == ""
    shown = renders(page)
    assert shown[-1] == answer and all(answer.startswith(s) for s in shown) and len(shown) >= 5, shown  # token by token
    assert page.eval_on_selector_all("#messages .message", "els => els.map(e => [e.dataset.type, e.dataset.id])") == [
        [m["type"], m["id"]] for m in messages
    ]
    assert emails_sent(slow) == before + 1
    assert [m["content"] for m in messages if m["type"] == "tool"] == ["queued"]


def reload_mid_answer(page: Any, site: StaticSite, server: GunicornServer) -> tuple[str, str | None, list[str]]:
    """Ask, reload once a few tokens are shown while the run still goes on; (thread id, run id stored, what showed before)."""
    open_page(page, site, server)
    thread_id = ask(page, "what time is it")
    page.wait_for_function("window.__renders.length >= 3")
    runs = httpx.get(f"{api(server)}/threads/{thread_id}/runs", timeout=10).json()
    assert [r["status"] for r in runs] == ["running"], runs  # the reload really comes mid-run
    stored = stored_run(page, thread_id)
    before = renders(page)
    page.reload()
    page.wait_for_selector("#status")
    return thread_id, stored, before


def test_a_reload_mid_answer_rejoins_the_run_and_shows_it_whole(
    page: Any,
    site: StaticSite,
    slow: GunicornServer,
    artifacts: Path,
) -> None:
    thread_id, stored, before = reload_mid_answer(page, site, slow)
    runs = wait_for_runs_to_end(slow, thread_id)
    assert stored == runs[0]["run_id"]  # useStream kept the run Content-Location named
    answer, messages = final_answer(slow, thread_id)
    assert before[-1] != answer and answer.startswith(before[-1])  # cut mid-answer
    wait_idle_with(page, answer, timeout=15)
    page.screenshot(path=str(artifacts / "use-stream-after-reload.png"), full_page=True)
    after = renders(page)
    assert after[-1] == answer and all(answer.startswith(s) for s in after), after  # nothing repeated, nothing missing
    assert len(after) >= 3, after  # the rejoined stream rendered as it came, not read whole from the state
    assert page.get_attribute("#status", "data-thread") == thread_id
    assert page.eval_on_selector_all("#messages .message", "els => els.map(e => [e.dataset.type, e.dataset.id])") == [
        [m["type"], m["id"]] for m in messages
    ]
    assert stored_run(page, thread_id) is None  # the joined run ended: useStream forgot it
    assert f"/langgraph/threads/{thread_id}/runs/{runs[0]['run_id']}/stream" in slow.log()  # it rejoined the run's stream


def test_negative_control_without_content_location_a_reload_loses_the_answer(
    page: Any,
    site: StaticSite,
    gunicorn: Callable[..., GunicornServer],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    server = gunicorn(env=browser_env(site, tmp_path / "threads.db"), app=NO_RUN_LOCATION_APP, name="no-run-location")
    thread_id, stored, before = reload_mid_answer(page, site, server)
    assert stored is None  # no Content-Location: useStream never learned the run's id
    wait_for_runs_to_end(server, thread_id)
    answer, _ = final_answer(server, thread_id)
    assert before[-1] != answer and answer.startswith(before[-1])
    deadline = time.monotonic() + 3  # the answer is complete on the server; give the page time to show it, if it could
    while time.monotonic() < deadline:
        assert page.inner_text("#answer") != answer
        page.wait_for_timeout(100)
    page.screenshot(path=str(artifacts / "use-stream-reload-without-content-location.png"), full_page=True)
    assert page.get_attribute("#status", "data-loading") == "false" and renders(page) == []
    joins = [line for line in server.log().splitlines() if f"GET /langgraph/threads/{thread_id}/runs/" in line and "/stream" in line]
    assert joins == []  # the page never asked for the run's stream again
