"""Reference (a), the article's fixed pattern: FastAPI ``StreamingResponse`` over ``ChatOpenAI.astream()``.

Run: ``uvicorn bench.apps.fastapi_ref:app --workers 1`` (the harness adds
``--no-access-log``; uvicorn picks uvloop and httptools when installed, the
fastest set-up a deploy would use).
"""

from __future__ import annotations

from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from bench.apps import chat_model

app = FastAPI()
llm = chat_model()


class ChatBody(BaseModel):
    message: str


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "app": "fastapi"}


@app.post("/api/chat/stream")
async def chat_stream(body: ChatBody) -> StreamingResponse:
    async def tokens() -> AsyncIterator[str]:
        async for chunk in llm.astream([HumanMessage(content=body.message)]):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return StreamingResponse(tokens(), media_type="text/plain")
