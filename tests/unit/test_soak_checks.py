"""The soak's checks find what they are for: a gap, a repeat, a silent end, a run left running, a run
generated twice; and accept what faults legitimately cause. A check that cannot fail proves nothing."""

from __future__ import annotations

from typing import Any

from bench.soak.checks import check
from bench.soak.client import Connection, History
from bench.soak.plan import answer, prompt, token
from tests.support.openai_upstream import UpstreamRequest

TAG = "c1s0"


def history(events: list[tuple[int, str, Any]], terminal: tuple[str, Any] | None, **fields: Any) -> History:
    h = History(TAG, 3, answer(TAG, 3), **fields)
    h.connections = [Connection("POST", 200, events=[(f"s_x:{seq}", kind, data) for seq, kind, data in events])]
    h.terminal = terminal
    return h


def tokens(*indexes: int, start: int = 1) -> list[tuple[int, str, Any]]:
    return [(start + n, "token", {"text": token(TAG, i)}) for n, i in enumerate(indexes)]


END = ("end", {"finish_reason": "stop"})
START = [(0, "start", {})]


def upstream(*faults: str | None, closed_at: float | None = None) -> list[UpstreamRequest]:
    body = {"messages": [{"role": "user", "content": prompt(TAG, 3, 20)}]}
    return [UpstreamRequest(body=body, fault=fault, client_closed_at=closed_at, finished_at=closed_at) for fault in faults]


def test_a_clean_history_passes() -> None:
    verdict = check([history(START + tokens(0, 1, 2) + [(4, "end", {})], END)], upstream(None), grace=5)
    assert verdict.ok and verdict.completed == 1


def test_a_missing_sequence_number_is_lost() -> None:
    events = START + [(1, "token", {"text": token(TAG, 0)}), (3, "token", {"text": token(TAG, 2)}), (4, "end", {})]
    verdict = check([history(events, END)], upstream(None), grace=5)
    assert verdict.lost >= 1 and not verdict.ok


def test_a_repeated_event_is_duplicated() -> None:
    events = START + tokens(0, 1) + [(2, "token", {"text": token(TAG, 1)})] + [(3, "end", {})]
    verdict = check([history(events, END)], upstream(None), grace=5)
    assert verdict.duplicated >= 1 and not verdict.ok


def test_an_end_without_the_whole_answer_is_a_content_mismatch() -> None:
    verdict = check([history(START + tokens(0, 1) + [(3, "end", {})], END)], upstream(None), grace=5)
    assert verdict.mismatched == 1 and not verdict.ok


def test_a_token_dropped_before_the_log_is_caught_although_the_ids_are_contiguous() -> None:
    """The deploy bug's shape: ids 0, 1, 2, 3 with no gap, `end`, and the middle token never written."""
    dropped = history(START + tokens(0, 2) + [(3, "end", {"tokens": 2})], END)
    assert dropped.seqs == [0, 1, 2, 3]  # numbering alone sees nothing wrong
    verdict = check([dropped], upstream(None), grace=5)
    assert verdict.mismatched == 1 and verdict.lost == 0 and not verdict.ok
    assert "uninterrupted answer" in verdict.failures[0]["problem"]


def test_a_changed_token_is_a_content_mismatch() -> None:
    events = START + [(1, "token", {"text": token(TAG, 0)}), (2, "token", {"text": " c1s0.X"}), (3, "token", {"text": token(TAG, 2)})]
    verdict = check([history(events + [(4, "end", {})], END)], upstream(None), grace=5)
    assert verdict.mismatched == 1 and not verdict.ok


def test_errors_from_the_service_own_parts_count_as_lost_to_infrastructure() -> None:
    store = history(
        START + tokens(0) + [(2, "error", {"error": {"type": "store_unavailable"}})], ("error", {"error": {"type": "store_unavailable"}})
    )
    upstream_fault = history(
        START + tokens(0) + [(2, "error", {"error": {"type": "upstream_unavailable"}})],
        ("error", {"error": {"type": "upstream_unavailable"}}),
    )
    gone = history(START + tokens(0), ("http", {"status": 404, "body": '{"error": {"type": "stream_not_found"}}'}))
    verdict = check([store, upstream_fault, gone], [], grace=5)
    assert verdict.infrastructure == {"store_unavailable": 1, "stream_not_found": 1}
    assert verdict.errors["upstream_unavailable"] == 1


def test_no_terminal_is_a_silent_cut_and_an_explicit_error_is_not() -> None:
    silent = history(START + tokens(0), None, gave_up=True)
    explicit = history(
        START + tokens(0) + [(2, "error", {"error": {"type": "producer_lost"}})], ("error", {"error": {"type": "producer_lost"}})
    )
    verdict = check([silent, explicit], [], grace=5)
    assert verdict.silent == 1 and verdict.errors["producer_lost"] == 1


def test_a_start_answered_without_an_id_is_a_silent_cut() -> None:
    orphan = History(TAG, 3, answer(TAG, 3), orphaned=True, left_at=1.0)
    orphan.connections = [Connection("POST", 200, ended="closed")]
    assert check([orphan], [], grace=5).silent == 1


def test_a_run_left_running_after_its_client_left_is_caught() -> None:
    left = history(START + tokens(0), None, left_at=100.0)
    assert check([left], upstream(None, closed_at=104.0), grace=5).not_stopped == 0
    assert check([left], upstream(None, closed_at=120.0), grace=5).not_stopped == 1


def test_retries_of_failed_requests_are_allowed_but_a_second_generation_is_not() -> None:
    given_up = history(START + [(1, "error", {"error": {"type": "rate_limited"}})], ("error", {"error": {"type": "rate_limited"}}))
    assert check([given_up], upstream("429", "500", "429"), grace=5).extra_generations == 0  # one try and two retries
    done = history(START + tokens(0, 1, 2) + [(4, "end", {})], END)
    assert check([done], upstream("429", None), grace=5).extra_generations == 0
    assert check([done], upstream(None, None), grace=5).extra_generations == 1
    assert check([done], upstream("429", "429", "429", None), grace=5).extra_generations == 1
