"""What serves us: the gunicorn worker class, told from inside the worker.

gunicorn's master imports the configured worker class before it forks, so
a worker's ``sys.modules`` says which class it is even when our
``conf/gunicorn.conf.py`` was not used.
"""

from __future__ import annotations

import sys

from webapp.concurrency import under_gevent


def detect_worker() -> str:
    """``gevent``, ``gthread``, ``sync``, another gunicorn worker module's name, or ``dev``."""
    if "gunicorn.arbiter" not in sys.modules:
        return "dev"
    if under_gevent():
        return "gevent"
    loaded = [name.rsplit(".", 1)[1] for name in sys.modules if name.startswith("gunicorn.workers.")]
    for name in ("gthread", "sync", "gtornado"):
        if name in loaded:
            return name
    return "unknown"
