"""Reference apps the service is compared with; each builds the real ChatOpenAI once, at import."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI


def chat_model() -> ChatOpenAI:
    """The same client settings as the service: the local upstream, no retries, usage in the stream."""
    return ChatOpenAI(
        model=os.environ.get("BENCH_MODEL", "bench-model"),
        api_key=os.environ.get("OPENAI_API_KEY", "bench-key"),
        base_url=os.environ["OPENAI_BASE_URL"],
        timeout=600,
        max_retries=0,
        stream_usage=True,
    )


def service_chat_model() -> BaseChatModel:
    """The model exactly as the service builds it (webapp.providers), for the same upstream.

    The ceiling streams this one, so the service's tokens/s divided by the
    ceiling's is what the relay and HTTP serving cost, whatever the
    provider layer does. ``WEBAPP_UPSTREAM_RAW_CHUNKS`` passes through.
    """
    from webapp.config import load_settings
    from webapp.providers import build_chat_model

    environ = {
        "WEBAPP_PROVIDER": "openai",
        "WEBAPP_MODEL": os.environ.get("BENCH_MODEL", "bench-model"),
        "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "bench-key"),
        "OPENAI_BASE_URL": os.environ["OPENAI_BASE_URL"],
        "WEBAPP_UPSTREAM_MAX_RETRIES": "0",
        "WEBAPP_UPSTREAM_TIMEOUT_SECONDS": "600",
        "WEBAPP_UPSTREAM_RAW_CHUNKS": os.environ.get("WEBAPP_UPSTREAM_RAW_CHUNKS", ""),
    }
    return build_chat_model(load_settings(environ))
