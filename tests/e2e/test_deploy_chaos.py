"""Deploys under load lose no answer and no token: every answer is checked against the uninterrupted one.

Two instances of two gevent workers on a real Redis behind the shipped
nginx; 40 clients each stream a 60-token answer, cut it twice at random
and resume with ``Last-Event-ID``, while one instance gets SIGHUP and the
other SIGTERM (``bench/soak/deploy.py``). Each answer must end with
``end`` and be the deterministic upstream's answer, character for
character. The negative control rides in the same run: the upstream
leaves one token out of a few answers on purpose (their ids stay
contiguous), and the content check must name exactly those.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak.deploy import run
from tests.support.proxies import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.alone]


@pytest.mark.timeout(240)
def test_deploys_under_load_lose_no_answer_and_every_dropped_token_is_caught(tmp_path: Path) -> None:
    require_binary("nginx", "nginx")
    require_binary("redis-server", "redis-server")
    outcome = run(tmp_path, clients=40, rounds=1, seed=3, drop_token=0.15)
    verdict = outcome.verdict
    kinds = [what for _, what in outcome.faults]
    assert any(k.startswith("SIGHUP") for k in kinds) and any(k.startswith("SIGTERM") for k in kinds)
    assert verdict.streams == 40 and verdict.cuts >= 20 and verdict.resumes >= 40

    # Negative control: the tokens left out on purpose are caught by content alone, never by numbering.
    assert outcome.dropped, "the upstream left no token out: the control did not run"
    caught = {failure["tag"] for failure in verdict.failures}
    assert caught == outcome.dropped and verdict.mismatched == len(outcome.dropped)
    assert verdict.lost == 0, "a missing token showed as a gap in the ids: the control would not test the content check"

    # Every other answer: ended with `end`, whole and exact, after both deploys.
    assert verdict.completed == 40, dict(verdict.errors)
    assert not verdict.infrastructure and verdict.duplicated == 0 and verdict.silent == 0
    exact = [h for h in outcome.histories if h.tag not in outcome.dropped]
    assert all("".join(d["text"] for _, k, d in h.events if k == "token") == h.expected for h in exact)
