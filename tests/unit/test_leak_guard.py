"""The leak guard in tests/conftest.py, against fixtures that leave processes running (issue 28).

Each case is a real pytest run, in a subprocess, on a tiny test file whose fixtures start processes:
one never stopped, one stopped only after a ``yield`` that a skip never reaches (the bug in
``served``), one daemonized out of the process tree, and one stopped properly. The guard must name
each leak (pid and command line), kill it and fail the run, under pytest-xdist too, without naming the
xdist workers or the process that was stopped. The negative control is the same file without the
guard: the run passes and the processes are still there. The three runs go at once, to stay fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from tests.support.processes import kill_all, run_bounded
from tests.support.servers import ROOT

FIXTURES = """
import os, subprocess, sys, time
from pathlib import Path

import pytest

PIDS = Path(os.environ["LEAK_PIDS"])
DAEMON = "import os, sys, time\\nif os.fork(): os._exit(0)\\nos.setsid()\\nopen(sys.argv[1] + '.new', 'w').write(str(os.getpid()))\\n" \\
         "os.replace(sys.argv[1] + '.new', sys.argv[1])\\ntime.sleep(300)"


def note(name, pid):
    (PIDS / name).write_text(str(pid))


@pytest.fixture
def never_stopped():
    process = subprocess.Popen(["sleep", "300"])
    note("never_stopped", process.pid)
    yield process


@pytest.fixture
def stopped_after_the_yield():  # issue 28: a tool found missing after the server started
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "skipped-fixture"])
    note("skipped", process.pid)
    pytest.skip("nginx is not installed")
    yield
    process.kill()


@pytest.fixture
def stopped_on_every_path(request):  # the fix: the stop registered before anything that may skip
    process = subprocess.Popen(["sleep", "299"])
    note("stopped", process.pid)
    request.addfinalizer(lambda: (process.kill(), process.wait()))
    pytest.skip("nginx is not installed")
"""

LEAKY = (
    FIXTURES
    + """

def test_uses_a_server(never_stopped):
    assert never_stopped.poll() is None


def test_skips_after_starting(stopped_after_the_yield):
    pass


def test_skips_cleanly(stopped_on_every_path):
    pass


def test_starts_a_daemon():
    subprocess.run([sys.executable, "-c", DAEMON, str(PIDS / "daemon")], check=True, timeout=10)
    for _ in range(200):  # the daemon writes its pid once its parent has exited
        if (PIDS / "daemon").exists():
            break
        time.sleep(0.05)
    assert (PIDS / "daemon").exists()
"""
)

# Under xdist (--dist loadfile) each file goes to its own worker: one leaks, one is clean.
XDIST_LEAKY = (
    FIXTURES
    + """

def test_uses_a_server(never_stopped):
    assert never_stopped.poll() is None
"""
)
XDIST_CLEAN = (
    FIXTURES
    + """

def test_skips_cleanly(stopped_on_every_path):
    pass
"""
)


@dataclass
class Run:
    """One pytest run on a test directory: its output, its exit code, and the pids its fixtures wrote down."""

    directory: Path
    process: subprocess.Popen[str]
    output: str = ""

    def wait(self, timeout: float = 90.0) -> "Run":
        self.output, _ = self.process.communicate(timeout=timeout)
        return self

    @property
    def pids(self) -> dict[str, int]:
        return {path.name: int(path.read_text()) for path in (self.directory / "pids").iterdir() if path.suffix != ".new"}

    def reported(self) -> dict[int, str]:
        """pid -> command line, for each process the guard named."""
        return {int(pid): cmdline for pid, cmdline in re.findall(r"LEAKED PROCESS pid (\d+): (.*)", self.output)}


def start_run(directory: Path, files: dict[str, str], *args: str, guard: bool = True) -> Run:
    (directory / "pids").mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CI"))}  # not the outer run's xdist worker
    env["LEAK_PIDS"] = str(directory / "pids")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(directory),
        "--timeout",
        "60",
        *(["-p", "tests.conftest"] if guard else []),
        *args,
        str(directory),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Run(directory, process)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    started = {
        "plain": start_run(tmp_path_factory.mktemp("plain"), {"test_leaky.py": LEAKY}),
        "xdist": start_run(
            tmp_path_factory.mktemp("xdist"), {"test_leaky.py": XDIST_LEAKY, "test_clean.py": XDIST_CLEAN}, "-n", "2", "--dist", "loadfile"
        ),
        "unguarded": start_run(tmp_path_factory.mktemp("unguarded"), {"test_leaky.py": LEAKY}, guard=False),
    }
    try:
        yield {name: run.wait() for name, run in started.items()}
    finally:  # whatever the runs left (the unguarded one leaves everything)
        for run in started.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()
            leftovers = []
            for pid in run.pids.values():
                try:
                    leftovers.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass
            kill_all(leftovers)


def test_the_guard_names_kills_and_fails_what_fixtures_left_running(runs: dict[str, Run]) -> None:
    run = runs["plain"]
    assert run.process.returncode == pytest.ExitCode.TESTS_FAILED, run.output
    assert re.search(r"\b2 passed, 2 skipped\b", run.output), run.output  # every test passed: only the guard fails it
    pids = run.pids
    assert set(pids) == {"never_stopped", "skipped", "stopped", "daemon"}, run.output
    reported = run.reported()
    assert set(reported) == {pids["never_stopped"], pids["skipped"], pids["daemon"]}, run.output
    assert reported[pids["never_stopped"]] == "sleep 300"
    assert reported[pids["skipped"]].endswith("import time; time.sleep(300) skipped-fixture")
    assert "time.sleep(300)" in reported[pids["daemon"]]  # out of the tree: found by the marker in its environment
    assert "3 process(es) started by the tests were still running" in run.output
    assert not any(running(pid) for pid in pids.values()), "the guard killed them"


def test_under_xdist_each_worker_hands_its_leaks_to_the_controller(runs: dict[str, Run]) -> None:
    run = runs["xdist"]
    assert run.process.returncode == pytest.ExitCode.TESTS_FAILED, run.output
    assert re.search(r"\b1 passed, 1 skipped\b", run.output), run.output
    pids = run.pids
    assert set(pids) == {"never_stopped", "stopped"}, run.output
    assert run.reported() == {pids["never_stopped"]: "sleep 300"}, run.output  # not the workers, not the stopped one
    assert not any(running(pid) for pid in pids.values())


def test_negative_control_without_the_guard_the_run_passes_and_the_processes_stay(runs: dict[str, Run]) -> None:
    run = runs["unguarded"]
    assert run.process.returncode == pytest.ExitCode.OK, run.output
    assert run.reported() == {} and "LEAKED" not in run.output
    pids = run.pids
    assert [name for name, pid in sorted(pids.items()) if running(pid)] == ["daemon", "never_stopped", "skipped"]


# -- a harness that starts servers of its own, stopped on a timeout (run_bounded) -------------------

HARNESS = """
import subprocess, sys, time
server = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(str(server.pid))
time.sleep(300)
"""


@pytest.mark.parametrize("bounded", [True, False], ids=["run_bounded", "negative-control-subprocess-run"])
def test_a_harness_that_times_out_is_stopped_with_what_it_started(bounded: bool, tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    command = [sys.executable, "-c", HARNESS, str(pid_file)]
    run = run_bounded if bounded else subprocess.run
    with pytest.raises(subprocess.TimeoutExpired):
        run(command, timeout=4, grace=1) if bounded else run(command, timeout=4, capture_output=True)
    server = int(pid_file.read_text())
    try:
        if bounded:
            assert not running(server), "the harness's server went with it"
        else:
            assert running(server), "subprocess.run kills only the harness: its server stays"
    finally:
        kill_all([psutil.Process(server)] if running(server) else [])
