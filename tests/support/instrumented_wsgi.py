"""The app under gunicorn with every asyncio event loop creation recorded.

gunicorn imports this module in the worker, after gevent has patched the
standard library, so the instrument sees the worker's whole life. Each
loop created appends a line with its stack to $WEBAPP_TEST_LOOP_LOG.
``misuse_app`` is the article's "wrong" pattern (``asyncio.run`` inside a
sync view): the negative control that shows the instrument does fire.
"""

from __future__ import annotations

import asyncio
import os
import traceback

from flask import Flask

_LOG_PATH = os.environ["WEBAPP_TEST_LOOP_LOG"]
_original_init = asyncio.BaseEventLoop.__init__


def _recording_init(self: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
    with open(_LOG_PATH, "a") as log:
        log.write("event loop created at:\n" + "".join(traceback.format_stack(limit=12)) + "\n")
    _original_init(self, *args, **kwargs)


asyncio.BaseEventLoop.__init__ = _recording_init  # type: ignore[method-assign]

from wsgi import app  # noqa: E402  (the instrument must be in place first)

misuse_app = Flask(__name__)


@misuse_app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@misuse_app.get("/misuse")
def misuse() -> str:
    async def answer() -> str:
        return "done"

    return asyncio.run(answer())


__all__ = ["app", "misuse_app"]
