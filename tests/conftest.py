"""Fixtures shared by every layer of tests: app, client, upstream, gunicorn."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import leaks
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.servers import ROOT, GunicornServer
from webapp import create_app

ARTIFACTS = ROOT / "test-artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--group",
        choices=("all", "shared", "alone"),
        default="all",
        help="shared: only tests that may run beside others (pytest-xdist -n); alone: only those marked alone",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``scripts/test`` runs the suite in two passes: most tests two at a time, then the ``alone`` ones."""
    group = config.getoption("--group")
    if group == "all":
        return
    keep = [item for item in items if (item.get_closest_marker("alone") is not None) == (group == "alone")]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


# -- the leak guard: nothing the run started outlives it ---------------------------------------
# Each pytest process (a plain run, the xdist controller, each worker) marks what it starts and, at its
# very end, kills what is still running and fails the run naming it. A worker cannot fail the run
# itself (xdist has sent its exit status by then): it hands its list to the controller.

RUN_ID = pytest.StashKey[str]()
LEAKS = pytest.StashKey[list[str]]()
WORKERS = pytest.StashKey[set[int]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUN_ID] = leaks.mark_this_run()
    config.stash[LEAKS] = []
    config.stash[WORKERS] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: object) -> None:
    """xdist started a worker: the controller's children now are its workers, which are not leaks."""
    config = node.config  # type: ignore[attr-defined]
    config.stash[WORKERS].update(child.pid for child in psutil.Process().children())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    output = getattr(node, "workeroutput", None) or {}
    node.config.stash[LEAKS].extend(output.get("uncut_leaks", []))  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)  # after fixtures are torn down and xdist's workers have exited
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    found = [str(leak) for leak in leaks.kill_leftovers(config.stash[RUN_ID], frozenset(config.stash[WORKERS]))]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and fails the run
        workeroutput["uncut_leaks"] = found
        return
    config.stash[LEAKS].extend(found)
    if config.stash[LEAKS] and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if config.stash[LEAKS] and config.pluginmanager.get_plugin("terminalreporter") is None:
        sys.stderr.write(_leak_report(config.stash[LEAKS]) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(LEAKS, []):
        terminalreporter.section("processes left running", sep="=", red=True, bold=True)
        terminalreporter.write_line(_leak_report(config.stash[LEAKS]), red=True)


def _leak_report(found: list[str]) -> str:
    lines = [f"LEAKED PROCESS {leak}" for leak in found]
    return "\n".join(
        [
            *lines,
            f"{len(found)} process(es) started by the tests were still running at the end: "
            "killed, and the run fails. Stop what a fixture starts on every path (see docs/ARCHITECTURE.md).",
        ]
    )


# A fast scripted model so app-level tests take milliseconds, not seconds.
FAST_SCRIPTED = {"WEBAPP_PROVIDER": "scripted", "WEBAPP_SCRIPTED_TTFT_MS": "0", "WEBAPP_SCRIPTED_INTERVAL_MS": "5"}
# A full worker refuses at once instead of lining the request up: for tests of the refusal itself.
NO_LINE = {"WEBAPP_ADMISSION_START_BUDGET_MS": "0"}


@pytest.fixture
def app() -> Flask:
    return create_app(FAST_SCRIPTED, environ={})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(upstream_server: OpenAIUpstream) -> OpenAIUpstream:
    upstream_server.reset()
    return upstream_server


@pytest.fixture
def gunicorn(artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., GunicornServer]]:
    """Factory: ``gunicorn(env={...}, args=[...])`` starts a real server, stopped after the test."""
    started: list[GunicornServer] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None, app: str = "wsgi:app", name: str = "") -> GunicornServer:
        """``name`` tells apart the logs of several servers in one test."""
        label = f"{name}-{request.node.name[:40]}" if name else request.node.name
        server = GunicornServer(artifacts, env=env, args=args or [], app=app, name=label.replace("/", "_"))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def openai_env(upstream: OpenAIUpstream, **settings: str) -> dict[str, str]:
    """Environment for the app to stream from the local upstream with the real ChatOpenAI."""
    return {
        "WEBAPP_PROVIDER": "openai",
        "OPENAI_API_KEY": "test-key-not-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "WEBAPP_MODEL": "upstream-model",
        "WEBAPP_UPSTREAM_MAX_RETRIES": "0",
        **settings,
    }
