"""Build the chat model the settings ask for: the embedded scripted one, or ChatOpenAI.

Called by the app factory, which gunicorn runs in each worker after gevent
has patched the standard library: the openai client (and its sockets and
TLS) is therefore built patched, once per worker, never at import time and
never on the first request.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from uncut.scripted import ScriptedChatModel
from webapp.config import Settings


def build_chat_model(settings: Settings) -> BaseChatModel:
    if settings.provider == "scripted":
        return ScriptedChatModel(
            model_name=settings.model,
            ttft=settings.scripted_ttft_ms / 1000,
            interval=settings.scripted_interval_ms / 1000,
            reasoning=settings.scripted_reasoning,
        )
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    from uncut.upstream_client import POOL_SHARDS, StreamingCompletions, build_http_client, sharded_clients

    model = ChatOpenAI(
        model=settings.model,
        api_key=SecretStr(settings.openai_api_key) if settings.openai_api_key is not None else None,
        base_url=settings.openai_base_url,
        timeout=settings.upstream_timeout_seconds,
        max_retries=settings.upstream_max_retries,
        stream_usage=True,
        http_client=build_http_client(
            max_connections=settings.upstream_max_connections, timeout=settings.upstream_timeout_seconds, shards=POOL_SHARDS
        ),
    )
    if model.root_client is not None:
        clients = sharded_clients(
            model.root_client,
            max_connections=settings.upstream_max_connections,
            timeout=settings.upstream_timeout_seconds,
            shards=POOL_SHARDS,
        )
        model.client = StreamingCompletions([c.chat.completions for c in clients], raw_chunks=settings.upstream_raw_chunks)
    return model


def warm_up(model: BaseChatModel) -> None:
    """Run the streaming machinery once at worker start, so the first requests do not pay for it.

    LangChain's callback and tracing set-up, and the openai SDK's response
    models, build caches and import modules lazily on first use; measured
    in bench/ as a first burst three times slower than later ones.
    """
    list(ScriptedChatModel(ttft=0, interval=0, tokens=2).stream("warm up"))
    root = getattr(model, "root_client", None)
    if root is None:  # not an openai client (the scripted model): importing the SDK would only slow the boot
        return
    try:
        from langchain_core.messages import AIMessageChunk
        from openai._models import construct_type
        from openai.types.chat import ChatCompletionChunk

        sample = {
            "id": "warm",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "warm",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}],
        }
        construct_type(type_=ChatCompletionChunk, value=sample)
        # platform.platform() runs `uname -p` in a subprocess on first use: once here,
        # not once per concurrent first request (28% of a cold burst in bench/).
        root.platform_headers()
        client = getattr(model, "client", None)
        if client is not None and hasattr(model, "_convert_chunk_to_generation_chunk"):
            model._convert_chunk_to_generation_chunk(sample, AIMessageChunk, {})  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - private APIs may move; warming is only an optimisation
        pass
