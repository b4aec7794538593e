"""The library as users install it: ``pip install .`` into fresh virtual environments.

The bare install imports no web framework, no gevent, no redis and no
prometheus, and still streams (through the plain-WSGI adapter, with no
server at all); ``pip install ".[flask]"`` runs the README's Flask snippet.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.servers import ROOT

pytestmark = pytest.mark.e2e

FORBIDDEN = ("flask", "werkzeug", "django", "gevent", "greenlet", "gunicorn", "redis", "prometheus_client", "langgraph", "openai")
CORE = (
    "uncut",
    "uncut.options",
    "uncut.streams",
    "uncut.relay",
    "uncut.generation",
    "uncut.eventlog",
    "uncut.events",
    "uncut.graphs",
    "uncut.sse",
    "uncut.callbacks",
    "uncut.concurrency",
    "uncut.shutdown",
    "uncut.admission",
    "uncut.openai_chunks",
    "uncut.telemetry",
    "uncut.scripted",
    "uncut.wsgi",
    "uncut.gunicorn",
    "uncut.doctor",
    "uncut.probe",
)


def venv(where: Path, requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def run(python: Path, code: str, cwd: Path) -> str:
    done = subprocess.run([str(python), "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv(tmp_path_factory.mktemp("bare"), str(ROOT))


def test_the_bare_install_imports_no_framework_and_still_streams(bare: Path, tmp_path: Path) -> None:
    out = run(
        bare,
        f"""
        import importlib, json, sys
        for name in {CORE!r}:
            importlib.import_module(name)
        loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))
        from uncut import ScriptedChatModel, __version__
        from uncut.wsgi import sse_response
        statuses = []
        environ = {{"REQUEST_METHOD": "POST", "REMOTE_ADDR": "127.0.0.1"}}
        body = sse_response(environ, lambda status, headers: statuses.append((status, dict(headers))),
                            ScriptedChatModel(tokens=3, ttft=0, interval=0), "hi")
        frames = b"".join(body)
        body.close()
        print(json.dumps({{"loaded": loaded, "version": __version__, "status": statuses[0][0],
                          "type": statuses[0][1]["Content-Type"], "frames": frames.decode()}}))
    """,
        tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["loaded"] == [], f"the core pulled in {result['loaded']}"
    assert result["status"] == "200 OK" and result["type"].startswith("text/event-stream")
    assert re.findall(r"event: (\w+)", result["frames"]) == ["start", "token", "token", "token", "end"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{result["version"]}"' in pyproject
    listed = subprocess.run([str(bare), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    print(f"bare install: {len(json.loads(listed.stdout))} packages")


def test_the_console_scripts_work_after_install(bare: Path, tmp_path: Path) -> None:
    bin_dir = bare.parent
    assert "uncut-probe" in subprocess.run([str(bin_dir / "uncut-probe"), "--help"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "gunicorn.conf.py").write_text("worker_class = 'gevent'\ngraceful_timeout = 310\nkeepalive = 75\n")
    doctor = subprocess.run([str(bin_dir / "uncut-doctor")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # It read ./gunicorn.conf.py as gunicorn would; the file has no shutdown-notice hook, which it names.
    assert doctor.returncode == 1 and "PROBLEM  shutdown notice hook" in doctor.stdout and "OK       heartbeats on" in doctor.stdout


def test_the_readme_flask_snippet_runs_with_the_flask_extra(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Flask\n") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    install = re.search(r'pip install "(uncut\[[^\]]+\])"', section).group(1)  # type: ignore[union-attr]
    assert install == "uncut[flask]"
    python = venv(tmp_path_factory.mktemp("flask"), f"{ROOT}[flask]")
    (tmp_path / "app.py").write_text(code)
    out = run(
        python,
        """
        from app import app
        response = app.test_client().post("/summarize", json={"doc": "A long report about streaming."})
        print(response.status_code, response.mimetype)
        print(response.get_data(as_text=True))
    """,
        tmp_path,
    )
    assert out.startswith("200 text/event-stream") and "event: end" in out and "event: token" in out
