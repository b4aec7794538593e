"""One blueprint per surface; ``service()`` gives views the app's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from webapp.config import Settings

STATE_KEY = "webapp"


@dataclass(frozen=True)
class ServiceState:
    """What the factory decided once, for every request."""

    settings: Settings
    chat_model: BaseChatModel
    agent: Runnable[Any, Any]  # the demo agent: create_agent on chat_model with a few tools
    worker: str
    threads: Any = None  # webapp.thread_store.Threads: the agent on threads (send_email behind an approval) and whose each is


def service() -> ServiceState:
    return current_app.extensions[STATE_KEY]
