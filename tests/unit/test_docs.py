"""The docs say what the code does: every option, every outcome, every setting, every module path,
and the site builds in strict mode (no broken link, anchor or reference)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.servers import ROOT
from uncut.options import StreamOptions
from uncut.relay import _OUTCOME_BY_ERROR
from uncut.telemetry import OUTCOMES
from webapp import config

DOCS = ROOT / "docs"
LIBRARY = (DOCS / "library.md").read_text()


def settings_table() -> ModuleType:
    """docs/hooks/settings_table.py, the generator of the configuration table (a MkDocs hook, not a package)."""
    spec = importlib.util.spec_from_file_location("settings_table", DOCS / "hooks" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_option_is_in_the_options_table() -> None:
    table = LIBRARY[LIBRARY.index("## Options (`uncut.StreamOptions`") :]
    table = table[: table.index("\n\n- ")]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    assert set(StreamOptions.names()) <= documented, set(StreamOptions.names()) - documented


def test_every_outcome_is_listed_and_known_to_the_metrics() -> None:
    relay_outcomes = {"completed", "client_disconnected", "slow_client", "upstream_error", *_OUTCOME_BY_ERROR.values()}
    assert relay_outcomes | {"rejected"} == set(OUTCOMES)
    listed = LIBRARY[LIBRARY.index("**Summaries, outcomes and metrics.**") :]
    listed = listed[: listed.index("\n- **")]
    assert all(f"`{outcome}`" in listed for outcome in OUTCOMES), [o for o in OUTCOMES if f"`{o}`" not in listed]


# The configuration table: generated from webapp/config.py SETTINGS, Setting.doc its only wording.


def test_the_configuration_page_is_the_settings_table() -> None:
    page = (DOCS / "configuration.md").read_text()
    assert settings_table().differences(page) == [], "run `python docs/hooks/settings_table.py --write`"
    assert all(f"| `{s.env}` |" in page for s in config.SETTINGS.values())


def test_a_page_that_disagrees_with_the_code_fails() -> None:
    generator = settings_table()
    page = (DOCS / "configuration.md").read_text()
    edited = page.replace("Key for the openai provider. Never logged.", "Key for the openai provider.")
    assert edited != page
    assert any("Never logged" in line for line in generator.differences(edited))
    dropped = re.sub(r"\n\| `WEBAPP_LOG_LEVEL` \|[^\n]*", "", page)
    assert any("WEBAPP_LOG_LEVEL" in line for line in generator.differences(dropped))
    assert generator.differences("no table at all") != []


def test_code_that_disagrees_with_the_page_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = settings_table()
    page = (DOCS / "configuration.md").read_text()
    setting = config.SETTINGS["retry_ms"]
    monkeypatch.setitem(config.SETTINGS, "retry_ms", config.Setting(setting.env, setting.parse, "Reworded in the code only."))
    assert any("Reworded in the code only." in line for line in generator.differences(page))


# docs/ARCHITECTURE.md names only what exists.


def architecture_paths(text: str) -> set[str]:
    """Repository paths (``uncut/relay.py``, ``webapp/api/``, ``conf/README.md``) and bare module names (``relay.py``)."""
    paths = set(re.findall(r"(?<![\w./-])((?:uncut|webapp|conf|bench|tests|examples|scripts|docs)/[\w./-]*[\w/])", text))
    paths |= set(re.findall(r"(?<![\w./-])([\w-]+\.py)\b", text))
    return paths


def test_every_module_path_the_architecture_names_exists() -> None:
    text = (DOCS / "ARCHITECTURE.md").read_text()
    names = architecture_paths(text)
    assert {"uncut/relay.py", "webapp/config.py", "uncut/agent_server/", "records.py"} <= names, names
    sources = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "node_modules" not in p.parts]
    bare = {p.name for p in sources} | {p.name for p in ROOT.glob("*.py")}
    missing = sorted(name for name in names if not ((ROOT / name).exists() if "/" in name else name in bare))
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_a_path_that_does_not_exist_is_caught() -> None:
    names = architecture_paths("2. **`streaming.py`** decides ... (`webapp/server.py`)")
    assert names == {"streaming.py", "webapp/server.py"}
    assert not (ROOT / "webapp/server.py").exists()


def test_the_readme_links_into_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in link and not link.startswith("#")]
    assert links, "the README links into the docs"
    assert [link for link in links if not (ROOT / link).exists()] == []


# The README's three snippets run as written (taken from the README, not copied; a fresh venv runs the Flask
# one in tests/e2e/test_packaging.py).

README_SNIPPETS = ("### Flask\n", "### Django\n", "### Plain WSGI", "### What the client gets")

EXERCISE = """
import io, json, sys
import flask_app, wsgi_app
body = json.dumps({"doc": "a report"}).encode()
outputs = [flask_app.app.test_client().post("/summarize", json={"doc": "a report"}).get_data()]
environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1"}
response = wsgi_app.app(environ, lambda status, headers: None)
outputs.append(b"".join(response))
response.close()
import django
from django.conf import settings
settings.configure(ALLOWED_HOSTS=["*"], SECRET_KEY="test", ROOT_URLCONF=[])
django.setup()
from django.test import RequestFactory
import views
response = views.summarize(RequestFactory().post("/summarize", data=body, content_type="application/json"))
outputs.append(b"".join(response.streaming_content))
response.close()
print(json.dumps([o.decode() for o in outputs]))
"""


def test_the_readme_snippets_stream(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    for name, start, end in zip(("flask_app", "views", "wsgi_app"), README_SNIPPETS, README_SNIPPETS[1:]):
        section = readme[readme.index(start) : readme.index(end)]
        (tmp_path / f"{name}.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    done = subprocess.run(
        [sys.executable, "-c", EXERCISE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
    )
    assert done.returncode == 0, done.stderr
    for framework, output in zip(("Flask", "WSGI", "Django"), json.loads(done.stdout.strip().splitlines()[-1])):
        events = re.findall(r"event: (\w+)", output)
        assert events[0] == "start" and events[-1] == "end" and events.count("token") > 10, (framework, output[-300:])
        assert '{"text":" \\"Summarize:"}' in output, framework


# The site builds, strictly: a broken link, anchor, include or API reference fails it.


def test_the_docs_build_in_strict_mode(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        message = "mkdocs and mkdocstrings[python] are not installed (pip install -r requirements-dev.txt)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must install them: see .ci/run)")
        pytest.skip(message)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")
    built = tmp_path / "site"
    for page in (
        "library",
        "service",
        "configuration",
        "protocols",
        "agents",
        "deploying",
        "conf",
        "benchmarks",
        "testing",
        "bench/RESULTS",
        "reference/uncut",
        "reference/flask",
        "reference/django",
        "reference/wsgi",
        "reference/agent_server",
        "reference/stores",
    ):
        assert (built / page / "index.html").exists(), page
    assert "sse_response" in (built / "reference/flask/index.html").read_text()
    assert "proxy_buffering off" in (built / "conf/index.html").read_text()
