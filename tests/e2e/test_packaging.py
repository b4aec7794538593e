"""The library as users install it: ``pip install .`` into fresh virtual environments.

The bare install imports no web framework, no gevent, no redis and no
prometheus, and still streams (through the plain-WSGI adapter, with no
server at all). The README's three snippets run as written, each taken from
its section of README.md and installed as the section says:
``pip install ".[flask]"`` runs the Flask one, ``pip install ".[django]"``
serves the Django view (GZipMiddleware on), and the bare install serves the
plain-WSGI app, both over a real socket on loopback.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.clients import read_stream
from tests.support.processes import stop_process
from tests.support.servers import ROOT, clean_environ, free_port

pytestmark = pytest.mark.e2e

FORBIDDEN = (
    "flask",
    "werkzeug",
    "django",
    "gevent",
    "greenlet",
    "gunicorn",
    "redis",
    "prometheus_client",
    "langgraph",
    "openai",
    "opentelemetry",
)
CORE = (
    "uncut",
    "uncut.options",
    "uncut.streams",
    "uncut.relay",
    "uncut.producer",
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


def readme_section(title: str) -> str:
    """The README's ``### <title>...`` section, up to the next heading of any level below ``#``."""
    readme = (ROOT / "README.md").read_text()
    heading = re.search(rf"^### {re.escape(title)}\b.*$", readme, re.M)
    assert heading is not None, f"README.md has no section '### {title}'"
    end = re.compile(r"^##", re.M).search(readme, heading.end())
    return readme[heading.end() : end.start() if end else len(readme)]


def snippet(section: str, filename: str) -> str:
    """The section's one ```python block, which names its file in its first line (``# app.py``)."""
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"expected one python block, found {len(blocks)}"
    assert blocks[0].startswith(f"# {filename}\n"), f"the snippet is not {filename}: {blocks[0][:60]!r}"
    return str(blocks[0])


@contextmanager
def serving(python: Path, harness: str, cwd: Path) -> Iterator[str]:
    """``python serve.py PORT`` in ``cwd`` (the harness, beside the snippet), on loopback; its URL once it accepts.

    The environment has no PYTHONPATH, and cwd is not the checkout, so ``uncut`` is the one pip installed
    into the venv (serve.py checks), not the source tree."""
    (cwd / "serve.py").write_text(textwrap.dedent(harness))
    port = free_port()
    env = clean_environ()
    for name in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log_path = cwd / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(python), "serve.py", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the server exited:\n{log_path.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"the server did not listen in 30 s:\n{log_path.read_text()}"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, signal.SIGTERM, 10)


SERVE_PREAMBLE = """
    import sys
    from wsgiref.simple_server import make_server

    import uncut

    assert "site-packages" in uncut.__file__, f"uncut from {uncut.__file__}, not the install"
"""
SERVE_FOREVER = """
    with make_server("127.0.0.1", int(sys.argv[1]), application) as server:
        server.serve_forever()
"""


def assert_streams_summary(url: str, log: Path) -> None:
    """POST the README's request (accepting gzip, as browsers and curl --compressed do): one SSE stream, uncompressed."""
    deadline = time.monotonic() + 60
    record = read_stream(
        "POST",
        f"{url}/summarize",
        json={"doc": "a report"},
        headers={"Accept-Encoding": "gzip"},
        timeout=30,
        stop_when=lambda _: time.monotonic() > deadline,
    )
    served = log.read_text(errors="replace")
    assert record.transport_error is None and time.monotonic() <= deadline, f"{record.transport_error!r}\n{served}"
    assert record.status == 200, f"{record.status} {record.body[:500]!r}\n{served}"
    assert record.headers["content-type"].startswith("text/event-stream"), record.headers
    assert "content-encoding" not in record.headers, f"compressed: {record.headers}"
    kinds = record.kinds
    assert kinds[0] == "start" and kinds[-1] == "end", kinds
    assert kinds.count("token") >= 1 and kinds.count("end") == 1, kinds
    assert record.text.startswith('You asked: "Summarize: a report".'), record.text


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
    section = readme_section("Flask")
    code = snippet(section, "app.py")
    assert re.search(r'pip install "(uncut\[[^\]]+\])"', section).group(1) == "uncut[flask]"  # type: ignore[union-attr]
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


@pytest.fixture(scope="module")
def django_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv(tmp_path_factory.mktemp("django"), f"{ROOT}[django]")


# The Django section names no server, and the django extra brings none (gunicorn comes with the gevent
# extra). The harness serves Django's own WSGI handler (get_wsgi_application) with the standard
# library's wsgiref, so the venv holds exactly what `pip install "uncut[django]"` brings and the test
# shows that install is enough; gunicorn's path is the Flask section's, run by test_readme_example.
DJANGO_SETTINGS = """
SECRET_KEY = "readme-snippet-test"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",  # first, as Django's docs place it: it sees the view's response last
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the snippet's @csrf_exempt is what lets the POST through
]
"""
DJANGO_URLS = """
from django.urls import path

import views

urlpatterns = [path("summarize", views.summarize)]
"""


def test_the_readme_django_snippet_serves_with_the_django_extra(django_install: Path, tmp_path: Path) -> None:
    section = readme_section("Django")
    assert re.search(r'pip install "(uncut\[[^\]]+\])"', section).group(1) == "uncut[django]"  # type: ignore[union-attr]
    (tmp_path / "views.py").write_text(snippet(section, "views.py"))
    (tmp_path / "settings.py").write_text(DJANGO_SETTINGS)
    (tmp_path / "urls.py").write_text(DJANGO_URLS)
    harness = (
        SERVE_PREAMBLE
        + """
    import os

    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    """
        + SERVE_FOREVER
    )
    with serving(django_install, harness, tmp_path) as url:
        assert_streams_summary(url, tmp_path / "serve.log")


def test_the_readme_wsgi_snippet_serves_with_the_bare_install(bare: Path, tmp_path: Path) -> None:
    section = readme_section("Plain WSGI")
    assert "pip install" not in section  # the bare install of the Install section: no framework
    (tmp_path / "app.py").write_text(snippet(section, "app.py"))
    harness = (
        SERVE_PREAMBLE
        + """
    from app import app as application
    """
        + SERVE_FOREVER
    )
    with serving(bare, harness, tmp_path) as url:
        assert_streams_summary(url, tmp_path / "serve.log")
