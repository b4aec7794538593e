"""Reference apps the service is compared with; each builds the real ChatOpenAI once, at import."""

from __future__ import annotations

import os

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
