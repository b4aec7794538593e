"""The README's copy-paste example, copied and pasted: saved as app.py and served by the
README's own gunicorn command, streaming from the local OpenAI-compatible upstream."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clients import read_stream
from tests.support.openai_upstream import OpenAIUpstream, Script, answer_text
from tests.support.servers import ROOT, clean_environ, free_port

pytestmark = pytest.mark.e2e


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_example_app_streams_under_the_readme_gunicorn_command(
    upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    section = readme_section("Add streaming to your own Flask app")
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    command = re.search(r"```sh\n(gunicorn .*?)\n", section).group(1)  # type: ignore[union-attr]
    (tmp_path / "app.py").write_text(code)
    port = free_port()
    env = clean_environ({"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": upstream.base_url, "PYTHONPATH": str(ROOT)})
    args = shlex.split(command) + ["--bind", f"127.0.0.1:{port}"]  # "gunicorn ..." runs as "python -m gunicorn ..."
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.05)
        upstream.script = Script(tokens=8, interval=0.1)
        record = read_stream("POST", f"http://127.0.0.1:{port}/summarize", json={"doc": "a report"})
        assert record.kinds == ["start"] + ["token"] * 8 + ["end"]
        assert record.text == answer_text(8)
    finally:
        process.terminate()
        process.wait(15)
