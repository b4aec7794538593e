"""Build the chat model the settings ask for: the embedded scripted one, or ChatOpenAI.

Called by the app factory, which gunicorn runs in each worker after gevent
has patched the standard library: the openai client (and its sockets and
TLS) is therefore built patched, once per worker, never at import time and
never on the first request.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from webapp.config import Settings
from webapp.scripted import ScriptedChatModel


def build_chat_model(settings: Settings) -> BaseChatModel:
    if settings.provider == "scripted":
        return ScriptedChatModel(
            model_name=settings.model,
            ttft=settings.scripted_ttft_ms / 1000,
            interval=settings.scripted_interval_ms / 1000,
        )
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.upstream_timeout_seconds,
        max_retries=settings.upstream_max_retries,
        stream_usage=True,
    )
