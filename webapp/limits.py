"""Admission: at most N open streams per worker process, and an immediate no beyond.

A worker that accepts every stream slows them all down (time to first token
grows for everyone) and can run out of descriptors; a client told ``503``
with ``Retry-After`` at once can go elsewhere or come back. Imports nothing
from Flask.
"""

from __future__ import annotations

import threading
from typing import Callable


class StreamLimiter:
    """Counts open streams; ``limit=0`` admits everything."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (no limit) or more")
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> Callable[[], None] | None:
        """A release function for an admitted stream (safe to call twice), or None when full."""
        with self._lock:
            if self.limit and self.active >= self.limit:
                return None
            self.active += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if not released.is_set():
                    released.set()
                    self.active -= 1

        return release
