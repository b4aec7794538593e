"""LangGraph's Agent Server API served from a sync stack: ``useStream``, ``langgraph_sdk`` and ``RemoteGraph`` talk to it.

Build an ``AgentServer`` from ``{graph_id: compiled graph}`` and the app's
``Streams``, then mount it with ``uncut.flask.agent_server_blueprint``,
``uncut.django.agent_server_urls`` or ``uncut.wsgi.agent_server_app``.
"""

from uncut.agent_server.records import MemoryRecords, Records, SqlRecords
from uncut.agent_server.server import AgentServer, ApiRequest, Reply
from uncut.errors import ProtocolError

__all__ = ["AgentServer", "ApiRequest", "MemoryRecords", "ProtocolError", "Records", "Reply", "SqlRecords"]
