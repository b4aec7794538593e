"""The playground page in a real headless Chromium (Debian's, driven by Playwright), through the
shipped nginx: the connection is cut mid-answer and the page ends with the whole answer, once;
in agent mode it shows the tool calls and their results live, through a slow tool's pause; in
"Agent with approvals" mode a person approves, edits or rejects the agent's send_email on a card."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.proxies import Nginx, Proxy, require_binary
from tests.support.servers import GunicornServer
from uncut.scripted import script_tokens

pytestmark = pytest.mark.e2e

PROMPT = "Why do LLM streams get cut off behind proxies?"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def app(artifacts: Path) -> Iterator[GunicornServer]:
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_INTERVAL_MS": "100",
        "WEBAPP_HEARTBEAT_SECONDS": "1",
        "WEBAPP_RETRY_MS": "500",
        "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "2.5",
    }
    server = GunicornServer(artifacts, env=env, name="browser")
    yield server.start()
    server.stop()


@pytest.fixture
def proxy(app: GunicornServer, tmp_path: Path) -> Iterator[Proxy]:
    nginx = Nginx(tmp_path, app.port).start()
    yield nginx
    nginx.stop()


@pytest.fixture
def page(artifacts: Path) -> Iterator[object]:
    chromium = require_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.path.realpath(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        yield page
        browser.close()


def counter(page: object, name: str) -> int:
    return int(page.inner_text(f"#{name}"))  # type: ignore[attr-defined]


def wait_for_counter(page: object, name: str, at_least: int, timeout: float) -> None:
    """Poll a counter through the DOM: the page's CSP forbids the string eval wait_for_function needs."""
    deadline = time.monotonic() + timeout
    while counter(page, name) < at_least:
        assert time.monotonic() < deadline, f"#{name} stayed below {at_least}"
        page.wait_for_timeout(50)  # type: ignore[attr-defined]


def ask(page: object, proxy: Proxy) -> None:
    page.goto(proxy.url + "/")  # type: ignore[attr-defined]
    page.fill("#prompt", PROMPT)  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    wait_for_counter(page, "tokens", 10, timeout=15)


def finish_and_check(page: object, artifacts: Path, name: str) -> None:
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)  # type: ignore[attr-defined]
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    assert page.inner_text("#answer") == "".join(script_tokens(PROMPT, None))  # type: ignore[attr-defined]
    assert counter(page, "reconnects") >= 1
    assert counter(page, "duplicates") == 0
    assert counter(page, "tokens") == len(script_tokens(PROMPT, None))


def test_restarting_nginx_mid_answer_the_page_resumes_and_completes(page: object, proxy: Proxy, artifacts: Path) -> None:
    ask(page, proxy)
    proxy.stop()  # every connection through nginx is cut
    proxy.start()  # same port, same config; EventSource reconnects with Last-Event-ID
    finish_and_check(page, artifacts, "playground-after-nginx-restart")


def test_the_cut_button_resumes_and_completes(page: object, proxy: Proxy, artifacts: Path) -> None:
    ask(page, proxy)
    page.click("#cut")  # type: ignore[attr-defined]
    finish_and_check(page, artifacts, "playground-after-cut-button")
    assert page.inner_text("#ttft").endswith("ms")  # type: ignore[attr-defined]


def test_agent_mode_shows_tool_calls_and_results_live_through_a_slow_tool(page: object, proxy: Proxy, artifacts: Path) -> None:
    page.goto(proxy.url + "/")  # type: ignore[attr-defined]
    page.select_option("#mode", "agent")  # type: ignore[attr-defined]
    page.fill("#prompt", "Look up heartbeats slowly, and calculate 6*7")  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    # While the slow tool runs: both calls are shown, the slow one still running, heartbeats counted.
    page.wait_for_selector('.tool-call[data-name="calculate"][data-status="success"]', timeout=15_000)  # type: ignore[attr-defined]
    running = page.locator('.tool-call[data-name="slow_lookup"]')  # type: ignore[attr-defined]
    assert running.get_attribute("data-status") == "running"
    wait_for_counter(page, "heartbeats", 1, timeout=10)
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)  # type: ignore[attr-defined]
    page.screenshot(path=str(artifacts / "playground-agent.png"), full_page=True)  # type: ignore[attr-defined]
    assert running.get_attribute("data-status") == "success"
    assert "archive" in running.locator(".result").inner_text()
    assert page.locator('.tool-call[data-name="calculate"] .result').inner_text() == "→ 42"  # type: ignore[attr-defined]
    assert counter(page, "toolcalls") == 2 and counter(page, "duplicates") == 0
    assert 'The calculate tool returned "42".' in page.inner_text("#answer")  # type: ignore[attr-defined]


# -- with API keys on, and against other sites ------------------------------------------------------

KEY = "browser-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_app(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    store = tmp_path_factory.mktemp("browser-keys-threads") / "threads.db"
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_INTERVAL_MS": "20",
        "WEBAPP_API_KEYS": KEY,
        "WEBAPP_THREAD_STORE": f"sqlite:///{store}",
    }
    server = GunicornServer(artifacts, env=env, name="browser-keys")
    yield server.start()
    server.stop()


def test_the_playground_works_with_api_keys(page: object, keyed_app: GunicornServer, artifacts: Path) -> None:
    page.goto(keyed_app.url + "/")  # type: ignore[attr-defined]  # the page itself needs no key
    page.click("#send")  # type: ignore[attr-defined]
    page.wait_for_selector('#status[data-state="failed"]', timeout=10_000)  # type: ignore[attr-defined]
    assert "API key" in page.inner_text("#status")  # type: ignore[attr-defined]
    page.fill("#key", KEY)  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)  # type: ignore[attr-defined]
    page.screenshot(path=str(artifacts / "playground-with-keys.png"), full_page=True)  # type: ignore[attr-defined]
    assert page.inner_text("#answer") == "".join(script_tokens(page.input_value("#prompt"), None))  # type: ignore[attr-defined]
    assert all("message=" not in line for line in keyed_app.log().splitlines())  # the prompt went in a POST body, not a URL


class _EvilSite:
    """A page on another site that asks the visitor's browser to start producers here."""

    def __init__(self, target: str) -> None:
        import http.server
        import threading

        page = (
            f'<img src="{target}/api/diagnostics/stream?tokens=3">'
            f'<script>fetch("{target}/api/chat/events", {{method: "POST", mode: "no-cors", body: "{{}}"}}).catch(() => {{}})</script>'
        )

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"  # another site than 127.0.0.1
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("cors", ["", "*"], ids=["refused", "negative-control-any-origin-allowed"])
def test_another_site_cannot_make_the_browser_start_a_generation(cors: str, page: object, artifacts: Path) -> None:
    env = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_INTERVAL_MS": "1", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_CORS_ORIGINS": cors}
    app = GunicornServer(artifacts, env=env, name=f"browser-cross-site-{bool(cors)}")
    evil = _EvilSite(app.url)
    try:
        app.start()
        page.goto(evil.url)  # type: ignore[attr-defined]
        page.wait_for_timeout(1500)  # type: ignore[attr-defined]
    finally:
        evil.close()
        app.stop()
    log = app.log().splitlines()
    image = [line for line in log if '"GET /api/diagnostics/stream' in line]
    summaries = [line for line in log if "stream_summary" in line]
    assert image, "the browser asked for the image"
    if cors:
        assert '" 200 ' in image[0] and summaries, "with every origin allowed, another site's page starts runs"
    else:
        assert '" 403 ' in image[0]
        assert summaries == [], "no stream may start for another site's page"


# -- "Agent with approvals (thread)": approval cards for HumanInTheLoopMiddleware's interrupts ----------

EMAIL = "please send email to bob about lunch"  # the scripted model calls send_email(to="bob lunch", ...)
CARD = ".approval-card"


@pytest.fixture(scope="module")
def thread_app(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    store = tmp_path_factory.mktemp("browser-threads") / "threads.db"  # nothing written in the checkout
    env = {
        "WEBAPP_PROVIDER": "scripted",
        "WEBAPP_SCRIPTED_TTFT_MS": "0",
        "WEBAPP_SCRIPTED_INTERVAL_MS": "10",
        "WEBAPP_THREAD_STORE": f"sqlite:///{store}",
    }
    server = GunicornServer(artifacts, env=env, name="browser-threads")
    yield server.start()
    server.stop()


def ask_for_approval(page: Any, url: str, prompt: str = EMAIL, key: str = "") -> str:
    """Send ``prompt`` in approvals mode and wait for the card; the thread id, as the page shows it."""
    page.goto(url + "/")
    page.select_option("#mode", "thread")
    if key:
        page.fill("#key", key)
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_selector('#status[data-state="interrupted"]', timeout=15_000)
    assert page.locator(CARD).count() == 1
    thread_id = page.get_attribute("#thread", "data-thread-id")
    assert thread_id and thread_id.startswith("t_"), thread_id
    return str(thread_id)


def settled(server: GunicornServer, thread_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``GET /api/threads/<id>`` once no run holds it (the lease goes just after the last event): bounded."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{server.url}/api/threads/{thread_id}", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        shown = response.json()
        if shown["status"] != "busy":
            return shown
        assert time.monotonic() < deadline, f"thread {thread_id} stayed busy"
        time.sleep(0.05)


def tool_messages(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in shown["messages"] if m["role"] == "tool"]


def queued(server: GunicornServer) -> list[dict[str, Any]]:
    """send_email's own record of each email it queued (one log line each)."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "email_queued"]


def posts(server: GunicornServer, thread_id: str) -> int:
    """Requests the page POSTed to the thread's events (gunicorn's access log)."""
    return sum(f'"POST /api/threads/{thread_id}/events ' in line for line in server.log().splitlines())


def buttons_disabled(page: Any) -> list[bool]:
    return [button.is_disabled() for button in page.locator(f"{CARD} button[data-decision]").all()]


def test_approvals_mode_approve_runs_the_tool_once_and_the_model_answers(page: Any, thread_app: GunicornServer, artifacts: Path) -> None:
    before = len(queued(thread_app))
    thread_id = ask_for_approval(page, thread_app.url)
    card = page.locator(CARD)
    assert card.get_attribute("data-name") == "send_email" and card.locator(".name").inner_text() == "send_email"
    assert json.loads(card.locator("textarea.args").input_value()) == {"to": "bob lunch", "subject": "bob lunch", "body": "bob lunch"}
    assert buttons_disabled(page) == [False, False, False]
    assert page.inner_text("#status") == "waiting for approval"
    assert settled(thread_app, thread_id)["status"] == "interrupted"
    page.screenshot(path=str(artifacts / "playground-approval-card.png"), full_page=True)

    page.click(f'{CARD} button[data-decision="approve"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    page.screenshot(path=str(artifacts / "playground-approval-approved.png"), full_page=True)
    assert page.inner_text('.tool-call[data-name="send_email"] .result') == "→ queued"
    assert 'The send_email tool returned "queued".' in page.inner_text("#answer")
    assert card.get_attribute("data-state") == "decided" and card.get_attribute("data-decision") == "approve"
    assert buttons_disabled(page) == [True, True, True]
    shown = settled(thread_app, thread_id)
    assert shown["status"] == "idle" and shown["interrupts"] == []
    assert [(m["name"], m["content"], m["status"]) for m in tool_messages(shown)] == [("send_email", "queued", "success")]

    # A second click cannot answer again: the button is disabled, and a forced click sends nothing.
    page.locator(f'{CARD} button[data-decision="approve"]').click(force=True, timeout=5_000)
    assert posts(thread_app, thread_id) == 2  # the message and the one resume
    assert len(queued(thread_app)) == before + 1
    assert len(tool_messages(settled(thread_app, thread_id))) == 1


def test_approvals_mode_reject_with_a_reason_queues_nothing(page: Any, thread_app: GunicornServer) -> None:
    before = len(queued(thread_app))
    thread_id = ask_for_approval(page, thread_app.url)
    page.fill(f"{CARD} input.reason", "not during lunch")
    page.click(f'{CARD} button[data-decision="reject"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    tool = page.locator('.tool-call[data-name="send_email"]')
    assert tool.get_attribute("data-status") == "error"
    assert "not during lunch" in tool.locator(".result").inner_text()
    assert "not during lunch" in page.inner_text("#answer")  # the model heard the reason
    assert page.locator(CARD).get_attribute("data-decision") == "reject"
    shown = settled(thread_app, thread_id)
    assert shown["status"] == "idle"
    assert [(m["status"], "not during lunch" in m["content"]) for m in tool_messages(shown)] == [("error", True)]
    assert len(queued(thread_app)) == before, "a rejected email was queued"


def test_approvals_mode_edit_runs_the_call_with_the_edited_arguments(page: Any, thread_app: GunicornServer) -> None:
    thread_id = ask_for_approval(page, thread_app.url)
    edited = {"to": "alice@example.com", "subject": "lunch", "body": "See you at noon."}
    page.fill(f"{CARD} textarea.args", json.dumps(edited))
    page.click(f'{CARD} button[data-decision="edit"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    result = page.inner_text('.tool-call[data-name="send_email"] .result')
    assert "alice@example.com" in result and result.endswith("queued"), result
    # The middleware keeps the model's own call in its message and says in the tool's answer what ran instead.
    shown = settled(thread_app, thread_id)
    calls = [call for m in shown["messages"] if m["role"] == "assistant" for call in m.get("tool_calls", [])]
    assert [(c["name"], c["args"]["to"]) for c in calls] == [("send_email", "bob lunch")]
    [tool] = tool_messages(shown)
    assert tool["status"] == "success" and tool["content"].endswith("queued")
    assert f"Executed instead: send_email with arguments {json.dumps(edited)}" in tool["content"]
    assert [(q["to"], q["subject"]) for q in queued(thread_app)][-1] == ("alice@example.com", "lunch")  # what send_email got


def test_approvals_mode_a_bad_edit_sends_nothing_and_a_refused_one_is_shown(page: Any, thread_app: GunicornServer) -> None:
    before = len(queued(thread_app))
    thread_id = ask_for_approval(page, thread_app.url)
    card = page.locator(CARD)
    # Not JSON: an inline error, the card stays open, nothing is sent.
    page.fill(f"{CARD} textarea.args", '{"to": "alice@example.com",')
    page.click(f'{CARD} button[data-decision="edit"]')
    assert "not valid JSON" in card.locator(".approval-error").inner_text()
    assert card.get_attribute("data-state") == "pending" and buttons_disabled(page) == [False, False, False]
    # JSON the tool's schema refuses: the server's 400 is shown, and the card opens again.
    page.fill(f"{CARD} textarea.args", '{"to": 5}')
    page.click(f'{CARD} button[data-decision="edit"]')
    page.wait_for_selector(".error-line", timeout=10_000)
    assert page.inner_text(".error-line").startswith("invalid_resume: ")
    assert "to: Input should be a valid string" in card.locator(".approval-error").inner_text()
    assert card.get_attribute("data-state") == "pending" and buttons_disabled(page) == [False, False, False]
    assert settled(thread_app, thread_id)["status"] == "interrupted"
    # Answered again, the thread goes on.
    page.click(f'{CARD} button[data-decision="approve"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    assert tool_messages(settled(thread_app, thread_id))[0]["content"] == "queued"
    assert posts(thread_app, thread_id) == 3, "the message, the refused edit and the approval: the bad JSON sent nothing"
    assert len(queued(thread_app)) == before + 1


def test_approvals_mode_shows_the_servers_409_when_the_call_was_answered_elsewhere(page: Any, thread_app: GunicornServer) -> None:
    before = len(queued(thread_app))
    thread_id = ask_for_approval(page, thread_app.url)
    # Another tab (here: another client) approves first.
    with httpx.Client(timeout=30) as client:
        answered = client.post(f"{thread_app.url}/api/threads/{thread_id}/events", json={"resume": {"decisions": [{"type": "approve"}]}})
    assert answered.status_code == 200 and "event: end" in answered.text
    assert settled(thread_app, thread_id)["status"] == "idle"
    page.click(f'{CARD} button[data-decision="approve"]')
    page.wait_for_selector('#status[data-state="failed"]', timeout=10_000)
    assert page.inner_text(".error-line").startswith("nothing_to_resume: ")
    assert page.locator(CARD).get_attribute("data-state") == "decided" and buttons_disabled(page) == [True, True, True]
    assert "not sent: nothing_to_resume" in page.inner_text(f"{CARD} .outcome")
    assert len(queued(thread_app)) == before + 1  # once, by the other client


# The model writes the arguments (here: from the prompt), and the middleware's description repeats them:
# the card must show them as text. The page's CSP would also stop the handler from running, so it is
# taken off in both cases: only how the card renders strings is under test. The control renders them
# with innerHTML instead, and the injected handler runs: the assertions can see an injection.
XSS_PROMPT = "please send email to bob <img src=x onerror=document.body.dataset.pwned=1>"
TEXT_LINE = "if (text !== undefined) node.textContent = text;"


@pytest.mark.parametrize("rendering", ["text", "markup"], ids=["as-text", "negative-control-innerHTML"])
def test_the_models_arguments_on_an_approval_card_are_text_not_markup(rendering: str, page: Any, thread_app: GunicornServer) -> None:
    def serve(route: Any) -> None:
        response = route.fetch()
        body = response.text()
        assert body.count(TEXT_LINE) == 1, "the page no longer renders the card's strings where this test looks"
        if rendering == "markup":
            body = body.replace(TEXT_LINE, TEXT_LINE.replace("textContent", "innerHTML"))
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-security-policy", "content-length")}
        route.fulfill(status=response.status, headers=headers, body=body)

    page.route(thread_app.url + "/", serve)
    before = len(queued(thread_app))
    thread_id = ask_for_approval(page, thread_app.url, XSS_PROMPT)
    description = page.inner_text(f"{CARD} .description")
    if rendering == "markup":
        page.wait_for_selector("body[data-pwned]", state="attached", timeout=5_000)
        assert page.locator(f"{CARD} img").count() >= 1
    else:
        assert "bob <img src=x onerror=document.body.dataset.pwned=1>" in description
        assert page.locator(f"{CARD} img").count() == 0
    assert "<img" in page.locator(f"{CARD} textarea.args").input_value()
    page.click(f'{CARD} button[data-decision="reject"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    pwned = page.locator("body[data-pwned]").count()  # the image's error has long come back by the end of a resumed run
    assert pwned == (1 if rendering == "markup" else 0)
    assert settled(thread_app, thread_id)["status"] == "idle" and len(queued(thread_app)) == before


def test_approvals_mode_sends_the_api_key(page: Any, keyed_app: GunicornServer) -> None:
    page.goto(keyed_app.url + "/")
    page.select_option("#mode", "thread")
    page.fill("#prompt", EMAIL)
    page.click("#send")  # no key: the thread is not created, and the page says why
    page.wait_for_selector('#status[data-state="failed"]', timeout=10_000)
    assert "API key" in page.inner_text(".error-line") and page.get_attribute("#thread", "data-thread-id") is None
    thread_id = ask_for_approval(page, keyed_app.url, key=KEY)
    page.click(f'{CARD} button[data-decision="approve"]')
    page.wait_for_selector('#status[data-state="done"]', timeout=15_000)
    shown = settled(keyed_app, thread_id, headers={"Authorization": f"Bearer {KEY}"})
    assert [m["content"] for m in tool_messages(shown)] == ["queued"]
