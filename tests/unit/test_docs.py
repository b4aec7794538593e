"""The README says what the code does: every option, every outcome, every setting of the library."""

from __future__ import annotations

import re

from tests.support.servers import ROOT
from uncut.options import StreamOptions
from uncut.relay import _OUTCOME_BY_ERROR
from uncut.telemetry import OUTCOMES

README = (ROOT / "README.md").read_text()


def test_every_option_is_in_the_options_table() -> None:
    table = README[README.index("### Options (`uncut.StreamOptions`"):]
    table = table[: table.index("\n\n- ")]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    assert set(StreamOptions.names()) <= documented, set(StreamOptions.names()) - documented


def test_every_outcome_is_listed_and_known_to_the_metrics() -> None:
    relay_outcomes = {"completed", "client_disconnected", "slow_client", "upstream_error", *_OUTCOME_BY_ERROR.values()}
    assert relay_outcomes | {"rejected"} == set(OUTCOMES)
    listed = README[README.index("**Summaries, outcomes and metrics.**"):]
    listed = listed[: listed.index("\n- **")]
    assert all(f"`{outcome}`" in listed for outcome in OUTCOMES), [o for o in OUTCOMES if f"`{o}`" not in listed]
