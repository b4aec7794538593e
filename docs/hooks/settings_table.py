"""The service's configuration table, generated from the one settings table.

``webapp.config.SETTINGS`` is the only source: the variable and its description (``Setting.doc``)
come from it, the default from the ``Settings`` dataclass. A description that ends with a sentence
``Default: ...`` gives the default column in words (for defaults that depend on other settings).

- As a MkDocs hook (``hooks:`` in ``mkdocs.yml``) it fails the build when the table committed in
  ``docs/configuration.md`` differs from the code.
- ``python docs/hooks/settings_table.py --write`` rewrites that table from the code;
  ``--check`` exits 1 when they differ (what ``tests/unit/test_docs.py`` asserts).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- settings-table: generated from webapp/config.py by docs/hooks/settings_table.py --write; do not edit by hand -->"
END = "<!-- /settings-table -->"
_DEFAULT_SENTENCE = re.compile(r"\s*Default: (?P<default>.+?)\.?$", re.S)


def _settings() -> tuple[dict[str, Any], Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from webapp import config

    return config.SETTINGS, config.Settings


def _shown(value: Any) -> str:
    if value is None or value == ():
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def table() -> str:
    """The Markdown table: one row per setting, in the order of ``SETTINGS``."""
    settings, dataclass = _settings()
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        for f in dataclasses.fields(dataclass)
    }
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, setting in settings.items():
        doc = " ".join(setting.doc.split())
        default = _shown(defaults[name])
        said = _DEFAULT_SENTENCE.search(doc)
        if said:
            default, doc = said.group("default"), doc[: said.start()]
        rows.append(f"| `{setting.env}` | {default} | {doc.replace('|', '&#124;')} |")
    return "\n".join(rows)


def block() -> str:
    return f"{BEGIN}\n\n{table()}\n\n{END}"


def committed(markdown: str) -> str:
    """The generated block as it stands in a page (``ValueError`` when the markers are missing)."""
    start, end = markdown.index(BEGIN), markdown.index(END) + len(END)
    return markdown[start:end]


def differences(markdown: str) -> list[str]:
    """Lines of a unified diff between the page's table and the code's; empty when they agree."""
    import difflib

    try:
        page = committed(markdown)
    except ValueError:
        return [f"the page has no generated settings table (the markers {BEGIN!r} ... {END!r})"]
    return list(
        difflib.unified_diff(
            page.splitlines(), block().splitlines(), "docs/configuration.md", "webapp/config.py SETTINGS", lineterm="", n=0
        )
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: the configuration page must carry the code's table."""
    if page.file.src_uri == "configuration.md":
        diff = differences(markdown)
        if diff:
            from mkdocs.exceptions import PluginError

            raise PluginError(
                "docs/configuration.md disagrees with webapp/config.py SETTINGS; "
                "run `python docs/hooks/settings_table.py --write`:\n" + "\n".join(diff)
            )
    return markdown


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        text = PAGE.read_text()
        try:
            PAGE.write_text(text.replace(committed(text), block()))
        except ValueError:
            print(f"{PAGE}: add the markers first:\n{BEGIN}\n{END}", file=sys.stderr)
            return 1
        return 0
    if argv[1:] == ["--check"]:
        diff = differences(PAGE.read_text())
        print("\n".join(diff) or "docs/configuration.md agrees with webapp/config.py")
        return 1 if diff else 0
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
