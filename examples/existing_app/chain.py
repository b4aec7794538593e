"""The app's LangChain chain: prompt | model | parser, as most apps already have."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You summarize documents in three sentences."),
        ("user", "Summarize this document:\n\n{doc}"),
    ]
)


def build_model() -> BaseChatModel:
    """ChatOpenAI when a key is set (OPENAI_BASE_URL for any compatible server), else the scripted model."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("EXAMPLE_MODEL", "gpt-4o-mini"), max_retries=0)
    from uncut.scripted import ScriptedChatModel

    return ScriptedChatModel()


def build_chain() -> Runnable[dict, str]:
    return PROMPT | build_model() | StrOutputParser()
