"""A callback that counts model calls: how tests show that a refused request reached no model."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler


class ModelCalls(BaseCallbackHandler):
    def __init__(self) -> None:
        self.count = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1
