"""A refusal decided in the admission gate costs the worker less CPU than one decided in the view.

bench.refusals' scenario, shortened: one gevent worker with its only slot
held, a closed loop of clients all refused; the worker's CPU per refusal,
with the gate and (the negative control) without it. An ordering with a
wide margin: the figures are bench/REFUSALS.md's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.refusals import ROWS, measure

pytestmark = [pytest.mark.e2e, pytest.mark.alone]


def test_the_gate_refuses_for_less_cpu_than_the_view(tmp_path: Path) -> None:
    args = argparse.Namespace(seconds=3.0, concurrency=32)
    gate = measure("gate", ROWS["gate"], args, tmp_path, new_connections=False)
    view = measure("view", ROWS["view"], args, tmp_path, new_connections=False)
    assert gate["refusals"] > 100 and view["refusals"] > 100, (gate, view)
    assert gate["cpu_per_refusal_us"] < 0.8 * view["cpu_per_refusal_us"], (gate, view)
