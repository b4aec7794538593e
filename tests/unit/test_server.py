"""The worker's garbage-collector tuning and its switch."""

from __future__ import annotations

import gc

from uncut.gunicorn import GC_THRESHOLDS, tune_gc


def test_tune_gc_sets_the_thresholds_and_can_be_switched_off() -> None:
    before = gc.get_threshold()
    try:
        assert tune_gc({"GUNICORN_TUNE_GC": "false"}) is False
        assert gc.get_threshold() == before
        assert tune_gc({}) is True
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
