"""The service with one-run-per-thread switched off: the negative control of tests/e2e/test_threads.py.

gunicorn imports it in the worker like ``wsgi``. Every run gets the
thread's lease, however many hold it already.
"""

from __future__ import annotations

from uncut.flask import EXTENSION_KEY
from wsgi import app


class EveryoneHoldsIt:
    shared = True

    def take(self, key: str, token: str, ttl: float) -> bool:
        return True

    def renew(self, key: str, token: str, ttl: float) -> bool:
        return True

    def give_back(self, key: str, token: str) -> None:
        pass

    def holder(self, key: str) -> str | None:
        return None


app.extensions[EXTENSION_KEY].streams.leases = EveryoneHoldsIt()

__all__ = ["app"]
