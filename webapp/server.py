"""What serves us, and the worker pitfalls we check for at start-up.

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
    for name in ("ggevent", "gthread", "sync", "gtornado"):
        if name in loaded:
            return "gevent-unpatched" if name == "ggevent" else name
    return "unknown"


def ssl_imported_before_patching() -> list[str]:
    """Under gevent: modules holding the unpatched ``ssl.SSLContext`` (imported before patching).

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
        if module is None or name.split(".")[0] in ("gevent", "ssl", "_ssl", "webapp"):
            continue
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if value is original or (
                isinstance(value, type) and value is not original and original in value.__mro__
                and not value.__module__.startswith("gevent")
            ):
                found.append(f"{name}.{attr}")
    return sorted(found)
