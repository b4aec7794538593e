"""Internal: stream modes: what a client may ask for, and ``graph.stream()``'s items as the Agent Server's events.

The client names modes as LangGraph's servers do. Each maps to a mode of
the sync ``graph.stream()``:

- ``values``, ``updates``, ``custom``, ``debug``, ``tasks``, ``checkpoints``:
  the same mode, its payload as JSON;
- ``messages-tuple``: LangGraph's ``messages`` mode, sent as event
  ``messages`` with data ``[chunk, metadata]``;
- ``messages``: the same, sent as the older ``messages/metadata``,
  ``messages/partial`` (the message so far) and ``messages/complete``;
- ``events``: refused (422). It is ``astream_events``, which exists only
  on asyncio; running it would need an event loop on the request path.

With ``stream_subgraphs`` an event of a subgraph is named ``mode|ns``.
Each event goes to the run's log as ``{"e": name, "p": payload}``.
"""

from __future__ import annotations

from typing import Any, Iterable

from langchain_core.messages import BaseMessage, BaseMessageChunk

from uncut.agent_server.wire import to_json
from uncut.errors import ProtocolError
from uncut.events import Emit, StreamEvents

CLIENT_MODES = ("values", "updates", "custom", "messages", "messages-tuple", "debug", "tasks", "checkpoints")
DEFAULT_MODES = ("values",)
EVENTS_REFUSED = (
    'stream_mode "events" is not served: it is astream_events, which runs only on asyncio, and this server streams'
    " the sync graph.stream() with no event loop. Ask for messages-tuple, updates, values, custom or debug instead."
)
INTERRUPT_KEY = "__interrupt__"
EVENT = "agent"  # the log's kind for an event
TOKEN_EVENT = "agent_token"  # the same, for a message chunk with text: counted as a token (time to first token, gaps)


def parse_modes(value: Any) -> tuple[str, ...]:
    """The client's ``stream_mode`` (a name or a list of names), checked; ``values`` when absent."""
    if value is None:
        return DEFAULT_MODES
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError(422, "stream_mode must be a mode name or a list of mode names")
    chosen: list[str] = []
    for name in names:
        if name == "events":
            raise ProtocolError(422, EVENTS_REFUSED)
        if name not in CLIENT_MODES:
            raise ProtocolError(422, f"stream_mode {name[:40]!r} is not one of {', '.join(CLIENT_MODES)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen) or DEFAULT_MODES


def graph_modes(modes: Iterable[str]) -> list[str]:
    """The modes ``graph.stream()`` runs with: the client's, ``messages`` for both message modes, and ``updates`` (interrupts)."""
    chosen = {"messages" if m.startswith("messages") else m for m in modes} | {"updates"}
    return sorted(chosen)


def _has_text(message: Any) -> bool:
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return bool(content)
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("text") for b in content)


class ModeEvents(StreamEvents):
    """``graph.stream(stream_mode=[...])`` items as events named as the client asked."""

    def __init__(self, emit: Emit, modes: tuple[str, ...]) -> None:
        super().__init__(emit)
        self.modes = frozenset(modes)
        self.interrupted = False
        self._partial: dict[str, BaseMessageChunk] = {}
        self._seen: set[str] = set()

    def feed(self, item: Any) -> None:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            return
        namespace = item[0] if len(item) == 3 else ()
        mode, payload = item[-2], item[-1]
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode == "updates" and isinstance(payload, dict) and INTERRUPT_KEY in payload and not namespace:
            self.interrupted = True
        if mode == "messages":
            self._message(payload, suffix)
        elif mode in self.modes:
            self._send(mode + suffix, to_json(payload))

    def _send(self, name: str, payload: Any, token: bool = False) -> None:
        self._emit(TOKEN_EVENT if token else EVENT, {"e": name, "p": payload})

    def _message(self, payload: Any, suffix: str) -> None:
        if not (isinstance(payload, tuple) and len(payload) == 2 and isinstance(payload[0], BaseMessage)):
            return
        message, metadata = payload
        token = _has_text(message)
        if "messages-tuple" in self.modes:
            self._send("messages" + suffix, [to_json(message), to_json(metadata)], token)
            token = False  # one token counted per chunk, whichever modes carry it
        if "messages" not in self.modes:
            return
        message_id = message.id or ""
        if message_id not in self._seen:
            self._seen.add(message_id)
            self._send("messages/metadata" + suffix, {message_id: {"metadata": to_json(metadata)}})
        if isinstance(message, BaseMessageChunk):
            previous = self._partial.get(message_id)
            whole = message if previous is None else previous + message
            self._partial[message_id] = whole
            self._send("messages/partial" + suffix, [to_json(whole)], token)
        else:
            self._partial.pop(message_id, None)
            self._send("messages/complete" + suffix, [to_json(message)], token)
