"""The Agent Server API at ``/langgraph``: LangGraph's SDKs, ``useStream`` and ``RemoteGraph`` on the demo agent (graph ``agent``).

The thread agent (send_email waits for approval), its checkpoints and the
API's records in the thread store (``WEBAPP_THREAD_STORE``), runs in the
stream store: a run's stream rejoins on any worker that shares them. Threads
and runs belong to the API key that made them (``x-api-key`` or
``Authorization: Bearer``); with keys off, to everyone.
"""

from __future__ import annotations

from uncut.flask import agent_server_blueprint, current_streams
from webapp.api import service
from webapp.api.threads import KEYS_OFF_OWNER
from webapp.auth import current_key_id


def _owner() -> str:
    return current_key_id() or KEYS_OFF_OWNER


bp = agent_server_blueprint(lambda: service().threads.agent_server(current_streams()), url_prefix="/langgraph", owner=_owner)
