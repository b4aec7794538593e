"""The library knows nothing of the service: no ``webapp`` name (``WEBAPP_*`` variables, ``webapp:`` keys,
the ``webapp`` package) appears anywhere under ``uncut/``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = re.compile(r"webapp", re.IGNORECASE)  # WEBAPP_, webapp:, webapp., "webapp"


def service_names(package: Path) -> list[str]:
    """Every ``path:line: text`` under ``package`` that names the service."""
    found = []
    for path in sorted(package.rglob("*")):
        if path.suffix not in (".py", ".pyi", ".typed", ".txt", ".md", ".lua", ".json") or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SERVICE_NAMES.search(line):
                found.append(f"{path.relative_to(package.parent)}:{number}: {line.strip()}")
    return found


def test_the_library_names_no_service() -> None:
    assert service_names(ROOT / "uncut") == []


def test_the_check_finds_a_service_name(tmp_path: Path) -> None:
    """The negative control: each form of the name, planted in a copy, is found."""
    package = tmp_path / "uncut"
    (package / "sub").mkdir(parents=True)
    (package / "clean.py").write_text("KEY = 'uncut:stream:'\n")
    (package / "a.py").write_text("HINT = 'set WEBAPP_STREAM_STORE'\n")
    (package / "sub" / "b.py").write_text("CHANNEL = 'webapp:cancel'\n")
    (package / "c.py").write_text("from webapp import config\n")
    found = [line.split(":", 1)[0] for line in service_names(package)]
    assert found == ["uncut/a.py", "uncut/c.py", "uncut/sub/b.py"]
