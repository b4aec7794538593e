"""The service with this issue's input checks switched back off: the e2e tests' negative controls.

gunicorn imports it in the worker like ``wsgi``. ``per_byte=False`` is the
old body deadline (checked between 64 KiB reads, no overall timer).
"""

from __future__ import annotations

from webapp.bodies import BodyDeadline
from wsgi import app

_deadline = app.wsgi_app
assert isinstance(_deadline, BodyDeadline), "BodyDeadline must wrap the app's wsgi_app"
_deadline.per_byte = False

__all__ = ["app"]
