"""The real JavaScript clients (tests/js: the Vercel AI SDK, LangGraph's SDK and useStream, pinned by its lockfile), run with Node.

``scripts/test`` installs them with ``npm ci`` from tests/js/package-lock.json
before the suite; nothing is fetched while the tests run. Without Node or
the installed packages a test fails under CI and skips elsewhere, naming the
install command.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Mapping

import pytest

from tests.support.proxies import require_binary
from tests.support.servers import ROOT

JS = ROOT / "tests" / "js"


def require_js_clients() -> str:
    """Node's path, once the pinned packages are installed."""
    node = require_binary("node", "nodejs npm")
    if not (JS / "node_modules" / "ai" / "package.json").exists():
        message = "the JavaScript clients are not installed: npm ci --prefix tests/js (scripts/test does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def installed_version(package: str) -> str:
    return json.loads((JS / "node_modules" / package / "package.json").read_text())["version"]


def run_ui_chat(mode: str, api: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """Run tests/js/ui_chat.mjs; its exit code and the JSON it printed."""
    node = require_js_clients()
    process = subprocess.run(
        [node, str(JS / "ui_chat.mjs"), mode, api, *args],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TIMEOUT_MS": str(int(timeout * 1000) - 2000),
            **(env or {}),
        },
    )
    lines = process.stdout.strip().splitlines()
    assert lines, f"no output from ui_chat.mjs {mode}: {process.stderr[-2000:]}"
    return process.returncode, json.loads(lines[-1])
