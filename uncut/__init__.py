"""uncut: stream LangChain output from a synchronous Python stack, never cut short without saying so.

The framework-free core; the adapters are ``uncut.flask``, ``uncut.django``
and ``uncut.wsgi``. Importing it imports no web framework, no gevent, no
redis and no prometheus.

The public API is what these modules list in ``__all__`` (pinned by
tests/unit/test_public_api.py); import from them only:

- ``uncut``: the core (``Streams``, ``StreamOptions``, ``StreamArgs``, the
  in-memory store, the errors a caller catches, and their base
  ``UncutError``: ``except uncut.UncutError`` catches every one);
- ``uncut.flask``, ``uncut.django``, ``uncut.wsgi``: the adapters, one
  function per way of streaming, each taking ``**StreamArgs`` and each
  with a ``refusal_response``;
- ``uncut.agent_server``: LangGraph's Agent Server API;
- ``uncut.errors``: every exception, error type on the wire and outcome;
- ``uncut.options``: the options, their ranges, ``StreamArgs``;
- ``uncut.eventlog`` (``MemoryStore``), ``uncut.redis_store``
  (``RedisStore``), ``uncut.redis_config``: where streams are kept;
- ``uncut.threads``, ``uncut.ui_request``: LangGraph threads and the AI
  SDK's chat request, and their refusals;
- ``uncut.scripted``: a chat model that needs no provider;
- ``uncut.callbacks``, ``uncut.telemetry``, ``uncut.prometheus``, ``uncut.otel``: hooks
  (``uncut.otel`` needs ``uncut[otel]``);
- ``uncut.gate``, ``uncut.gunicorn``, ``uncut.upstream_client``: serving
  (admission before the framework, the worker, the openai client);
- ``uncut.doctor``, ``uncut.probe``: the command-line checks.

Every other module (``uncut.streams``, ``uncut.relay``, ``uncut.producer``,
``uncut.admission``, ``uncut.sse``, ``uncut.ui_threads``,
``uncut.agent_server.server``...) is internal: its docstring starts with
"Internal:", and it may change in any release.
"""

from uncut.errors import StreamNotFound, StreamRefused, UncutError
from uncut.eventlog import MemoryStore, StoreUnavailable
from uncut.options import OptionError, StreamArgs, StreamOptions
from uncut.scripted import ScriptedChatModel
from uncut.streams import CONTENT_TYPES, HEADERS, EventLogStore, StreamBody, Streams
from uncut.threads import ThreadError

__version__ = "0.3.0"

__all__ = [
    "CONTENT_TYPES",
    "HEADERS",
    "EventLogStore",
    "MemoryStore",
    "OptionError",
    "ScriptedChatModel",
    "StoreUnavailable",
    "StreamArgs",
    "StreamBody",
    "StreamNotFound",
    "StreamOptions",
    "StreamRefused",
    "Streams",
    "ThreadError",
    "UncutError",
    "__version__",
]
