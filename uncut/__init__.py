"""uncut: stream LangChain output from a synchronous Python stack, never cut short without saying so.

The framework-free core; the adapters are ``uncut.flask``, ``uncut.django``
and ``uncut.wsgi``. Importing it imports no web framework, no gevent, no
redis and no prometheus.
"""

from uncut.eventlog import MemoryStore
from uncut.options import OptionError, StreamOptions
from uncut.scripted import ScriptedChatModel
from uncut.streams import CONTENT_TYPES, HEADERS, StreamBody, StreamNotFound, StreamRefused, Streams

__version__ = "0.2.0"

__all__ = [
    "CONTENT_TYPES", "HEADERS", "MemoryStore", "OptionError", "ScriptedChatModel", "StreamBody", "StreamNotFound",
    "StreamOptions", "StreamRefused", "Streams", "__version__",
]
