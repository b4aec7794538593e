"""What each stream asks for and what the deterministic upstream answers, faults included.

A prompt names its stream and its shape: ``soak <tag> t<tokens> i<interval ms>``.
The upstream answers exactly ``answer(tag, tokens)``, so a client's history
can be checked against it; a seeded rule, keyed by the tag and the
request's place among that tag's requests, fails some requests before the
stream (429, 500) and drops some connections mid-stream.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import Any

from tests.support.openai_upstream import Script

_PROMPT = re.compile(r"soak (\S+) t(\d+) i(\d+)")


def prompt(tag: str, tokens: int, interval_ms: int) -> str:
    return f"soak {tag} t{tokens} i{interval_ms}"


def token(tag: str, index: int) -> str:
    return f" {tag}.{index}"


def answer(tag: str, tokens: int) -> str:
    return "".join(token(tag, i) for i in range(tokens))


@dataclass(frozen=True)
class UpstreamFaults:
    """How often the upstream fails a request on purpose."""

    seed: int
    rate_limited: float = 0.03  # 429 before the stream: ChatOpenAI retries it
    server_error: float = 0.02  # 500 before the stream: retried too
    dropped: float = 0.02  # the connection closes mid-stream: an explicit error for the client

    def script_for(self, body: dict[str, Any], tries: int) -> Script:
        """The answer to a request, and whether to fail it; ``tries`` counts this tag's earlier requests."""
        text = next((m["content"] for m in reversed(body.get("messages") or []) if m.get("role") == "user"), "")
        match = _PROMPT.search(text if isinstance(text, str) else "")
        if match is None:  # a health check or a stray request: a short plain answer
            return Script(tokens=3)
        tag, tokens, interval = match.group(1), int(match.group(2)), int(match.group(3)) / 1000
        texts = tuple(token(tag, i) for i in range(tokens))
        rng = random.Random(zlib.crc32(f"{self.seed}:{tag}:{tries}".encode()))
        roll = rng.random()
        if roll < self.rate_limited:
            return Script(tokens=tokens, texts=texts, fail_status=429)
        if roll < self.rate_limited + self.server_error:
            return Script(tokens=tokens, texts=texts, fail_status=500)
        if roll < self.rate_limited + self.server_error + self.dropped and tokens > 2:
            return Script(tokens=tokens, texts=texts, interval=interval, drop_at=rng.randrange(1, tokens))
        return Script(tokens=tokens, texts=texts, interval=interval)


def tag_of(body: dict[str, Any]) -> str | None:
    text = next((m["content"] for m in reversed(body.get("messages") or []) if m.get("role") == "user"), "")
    match = _PROMPT.search(text if isinstance(text, str) else "")
    return match.group(1) if match else None
