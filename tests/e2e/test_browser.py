"""The playground page in a real headless Chromium (Debian's, driven by Playwright), through the
shipped nginx: the connection is cut mid-answer and the page ends with the whole answer, once;
in agent mode it shows the tool calls and their results live, through a slow tool's pause."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.proxies import Nginx, Proxy, require_binary
from tests.support.servers import GunicornServer
from webapp.scripted import script_tokens

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


def ask(page: object, proxy: Proxy) -> None:
    page.goto(proxy.url + "/")  # type: ignore[attr-defined]
    page.fill("#prompt", PROMPT)  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    page.wait_for_function("Number(document.querySelector('#tokens').textContent) >= 10", timeout=15_000)  # type: ignore[attr-defined]


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
    page.wait_for_function("Number(document.querySelector('#heartbeats').textContent) >= 1", timeout=10_000)  # type: ignore[attr-defined]
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)  # type: ignore[attr-defined]
    page.screenshot(path=str(artifacts / "playground-agent.png"), full_page=True)  # type: ignore[attr-defined]
    assert running.get_attribute("data-status") == "success"
    assert "archive" in running.locator(".result").inner_text()
    assert page.locator('.tool-call[data-name="calculate"] .result').inner_text() == "→ 42"  # type: ignore[attr-defined]
    assert counter(page, "toolcalls") == 2 and counter(page, "duplicates") == 0
    assert 'The calculate tool returned "42".' in page.inner_text("#answer")  # type: ignore[attr-defined]
