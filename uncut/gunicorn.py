"""What serves us, and the worker pitfalls we check for at start-up.

gunicorn's master imports the configured worker class before it forks, so
a worker's ``sys.modules`` says which class it is even when our
``conf/gunicorn.conf.py`` was not used.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Mapping

from uncut.concurrency import client_socket, under_gevent  # public here: what serves us, and its socket

__all__ = ["GC_THRESHOLDS", "client_socket", "detect_worker", "ssl_imported_before_patching", "tune_gc", "under_gevent"]

# Young collections every 50,000 net allocations instead of CPython's 700.
# A streaming worker allocates a few objects per token and keeps thousands of
# long-lived ones (greenlets, connections, pydantic models); at the default
# it spent a fifth of its CPU collecting (bench/: +25-30 % tokens/s at C=400).
GC_THRESHOLDS = (50_000, 20, 100)


def detect_worker() -> str:
    """``gevent``, ``gthread``, ``sync``, another gunicorn worker module's name, or ``dev``."""
    if "gunicorn.arbiter" not in sys.modules:
        return "dev"
    if under_gevent():
        return "gevent"
    loaded = [name.rsplit(".", 1)[1] for name in sys.modules if name.startswith("gunicorn.workers.")]
    for name in ("ggevent", "gthread", "sync", "gtornado"):
        if name in loaded:
            return "gevent-unpatched" if name == "ggevent" else name
    return "unknown"


def ssl_imported_before_patching(ignore: tuple[str, ...] = ()) -> list[str]:
    """Under gevent: modules holding the unpatched ``ssl.SSLContext`` (imported before patching).

    ``ignore`` names top-level packages not to scan (an app's own, which it knows hold no TLS objects).

    gevent warns about this at patch time; TLS objects made from those
    references block the whole worker or recurse. The same scan gevent does,
    after the fact.
    """
    if not under_gevent():
        return []
    import ssl

    from gevent import monkey

    original = monkey.get_original("ssl", "SSLContext")
    if ssl.SSLContext is original:
        return ["ssl (not patched at all)"]
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in ("gevent", "ssl", "_ssl", *ignore):
            continue
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if value is original or (
                isinstance(value, type)
                and value is not original
                and original in value.__mro__
                and not value.__module__.startswith("gevent")
            ):
                found.append(f"{name}.{attr}")
    return sorted(found)


def tune_gc(environ: Mapping[str, str] = os.environ, thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> bool:
    """Collect less often, and never again look at what start-up built (modules, models, the app).

    Called once per worker after the app is loaded (gunicorn's
    ``post_worker_init``). ``gc.freeze()`` moves every object alive now to
    a permanent generation that collections skip. ``GUNICORN_TUNE_GC=false``
    keeps CPython's defaults; returns whether it tuned.
    """
    if environ.get("GUNICORN_TUNE_GC", "true").strip().lower() in ("0", "false", "no"):
        return False
    gc.freeze()
    gc.set_threshold(*thresholds)
    return True
