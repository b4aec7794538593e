"""The library guide's Flask example (docs/library.md, once the README's), copied and pasted: saved as
app.py and served by the guide's own gunicorn command (the snippet's key-free model, so it runs as it is)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clients import read_stream
from tests.support.processes import stop_process
from tests.support.servers import ROOT, clean_environ, free_port

pytestmark = pytest.mark.e2e


def guide_section(title: str) -> str:
    text = (ROOT / "docs" / "library.md").read_text()
    start = text.index(f"## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_guide_example_app_streams_under_the_guide_gunicorn_command(tmp_path: Path) -> None:
    section = guide_section("Flask")
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    command = re.search(r"```sh\n(gunicorn .*?)\n", section).group(1)  # type: ignore[union-attr]
    (tmp_path / "app.py").write_text(code)
    port = free_port()
    env = clean_environ({"PYTHONPATH": str(ROOT)})
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
        record = read_stream("POST", f"http://127.0.0.1:{port}/summarize", json={"doc": "a report"})
        assert record.kinds[0] == "start" and record.kinds[-1] == "end" and record.kinds.count("token") > 10
        assert record.text.startswith('You asked: "Summarize: a report".')
        times = record.token_times()
        assert times[-1] - times[0] > 1.0, "tokens arrive one by one, not at the end"
    finally:
        stop_process(process, signal.SIGTERM, 15)  # and its workers, if the master outlives the wait
