"""The app's LangChain chain: prompt | model | parser, as most apps already have."""

from __future__ import annotations

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from examples.models import build_model

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You summarize documents in three sentences."),
        ("user", "Summarize this document:\n\n{doc}"),
    ]
)


def build_chain() -> Runnable[dict, str]:
    return PROMPT | build_model() | StrOutputParser()
