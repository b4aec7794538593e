"""The service's budget check: ``python -m webapp.doctor [--nginx FILE] [--haproxy FILE]``.

``uncut-doctor`` with the service's own settings: the heartbeat and the
longest stream come from the same WEBAPP_* variables the app reads, and
gunicorn's settings from conf/gunicorn.conf.py unless another file is given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from uncut.doctor import Finding, arguments, findings_for, report
from webapp.config import ConfigError, load_settings

SHIPPED_GUNICORN_CONF = Path(__file__).resolve().parent.parent / "conf" / "gunicorn.conf.py"


def run(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> tuple[int, list[Finding]]:
    args = arguments("python -m webapp.doctor", SHIPPED_GUNICORN_CONF).parse_args(argv)
    settings = load_settings(os.environ if environ is None else environ)
    findings = findings_for(args, settings)
    return (0 if all(f.ok for f in findings) else 1), findings


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status, findings = run(argv)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    report(findings)
    return status


if __name__ == "__main__":
    sys.exit(main())
