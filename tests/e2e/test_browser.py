"""The playground page in a real headless Chromium (Debian's, driven by Playwright), through the
shipped nginx: the connection is cut mid-answer and the page ends with the whole answer, once;
in agent mode it shows the tool calls and their results live, through a slow tool's pause."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.proxies import Nginx, Proxy, require_binary
from tests.support.servers import GunicornServer
from uncut.scripted import script_tokens

pytestmark = pytest.mark.e2e

PROMPT = "Why do LLM streams get cut off behind proxies?"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def app(artifacts: Path) -> Iterator[GunicornServer]:
    env = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_INTERVAL_MS": "100", "WEBAPP_HEARTBEAT_SECONDS": "1", "WEBAPP_RETRY_MS": "500",
           "WEBAPP_AGENT_SLOW_TOOL_SECONDS": "2.5"}
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
def keyed_app(artifacts: Path) -> Iterator[GunicornServer]:
    env = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_INTERVAL_MS": "20", "WEBAPP_API_KEYS": KEY}
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
    """A page on another site that asks the visitor's browser to start generations here."""

    def __init__(self, target: str) -> None:
        import http.server
        import threading

        page = (f'<img src="{target}/api/diagnostics/stream?tokens=3">'
                f'<script>fetch("{target}/api/chat/events", {{method: "POST", mode: "no-cors", body: "{{}}"}}).catch(() => {{}})</script>')

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
        assert summaries == [], "no generation may start for another site's page"
