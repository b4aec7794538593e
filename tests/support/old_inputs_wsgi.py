"""The service with this issue's input checks switched back off: the e2e tests' negative controls.

gunicorn imports it in the worker like ``wsgi``. ``per_byte=False`` is the
old body deadline (checked between 64 KiB reads, no overall timer); every
client the same chat owner is the old rule for AI SDK chats with keys off
(anyone may resume or take over any chat id).
"""

from __future__ import annotations

from uncut.gate import AdmissionGate
from webapp.api import ui_chat
from webapp.bodies import BodyDeadline
from webapp.chat_owner import ChatOwner
from wsgi import app

_outer = app.wsgi_app
_deadline = _outer.app if isinstance(_outer, AdmissionGate) else _outer  # the admission gate sits outside it
assert isinstance(_deadline, BodyDeadline), "BodyDeadline must wrap the app's wsgi_app"
_deadline.per_byte = False
ui_chat.chat_owner = lambda mint: ChatOwner("anyone")  # type: ignore[assignment]

__all__ = ["app"]
