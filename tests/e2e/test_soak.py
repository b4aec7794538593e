"""The chaos soak, short and with a fixed seed: load and every fault at once, nothing lost.

Two instances of two gevent workers behind the shipped nginx, a real Redis,
the local upstream failing on purpose; clients cut and resume, one
instance restarts, the other is SIGTERMed and restarted, workers are
killed, nginx reloads, Redis restarts with its data kept and Sentinel fails
over (``bench/soak``). Every history
must end explicitly, with no event missing or repeated, and every answer
that ended with ``end`` must be the uninterrupted answer, exactly.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_bounded
from tests.support.proxies import require_binary
from tests.support.servers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.alone]


@pytest.mark.timeout(420)
def test_a_short_soak_loses_duplicates_and_silently_cuts_nothing(tmp_path: Path) -> None:
    require_binary("nginx", "nginx")
    require_binary("redis-server", "redis-server")
    command = [sys.executable, "-m", "bench.soak", "--clients", "40", "--seconds", "90", "--seed", "1", "--out", str(tmp_path)]
    done = run_bounded(command, cwd=ROOT, text=True, timeout=400)  # on a timeout, the soak's servers are stopped too
    print(done.stdout)
    result = json.loads((tmp_path / "soak-1.json").read_text())
    failures = (tmp_path / "soak-1-failures.jsonl").read_text()
    assert done.returncode == 0 and result["ok"], f"{done.stdout}{done.stderr}\n{failures[:5000]}"
    line = result["summary"]
    assert "lost 0, duplicated 0, content mismatched 0, silent cuts 0, not stopped 0, extra generations 0" in line
    kinds = [what for _, what in result["faults"]]
    assert {"nginx reload", "Redis restart (data kept)", "Sentinel failover: replica promoted"} <= set(kinds)
    assert any(k.startswith("kill -9") for k in kinds)
    assert any(k.startswith("SIGTERM") for k in kinds) and any(k.startswith("SIGHUP") for k in kinds)
    assert sum(result["upstream_faults"].values()) > 0 and int(re.search(r"completed \d+, cuts (\d+)", line).group(1)) > 0  # type: ignore[union-attr]
