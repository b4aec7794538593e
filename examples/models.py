"""The model the examples run: ChatOpenAI when a key is set (OPENAI_BASE_URL for any compatible server), else the scripted one."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel


def build_model() -> BaseChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("EXAMPLE_MODEL", "gpt-4o-mini"), max_retries=0)
    from uncut.scripted import ScriptedChatModel

    return ScriptedChatModel()
