"""Finding the processes a test run started and left running, to kill them and fail the run.

Two ways to recognize them, because either alone misses some:

- the descendants of this pytest process (a server a fixture never stopped);
- a marker in the environment: ``UNCUT_TEST_RUN`` holds a ``/``-separated path of run ids, each pytest
  process appending its own in ``pytest_configure``. Every child inherits it, so it still names the run
  after the child was reparented: nginx's or redis's daemonized forks, a gunicorn whose harness was
  killed, the leftovers of a crashed xdist worker. A pytest run inside a test appends its own id, so
  its processes are the outer run's too, while an outer run's are not the inner one's.

Only processes that are still running count: zombies hold no port. A process being stopped gets a
bounded moment to go before it is called leaked.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass

import psutil

MARKER = "UNCUT_TEST_RUN"
GRACE_SECONDS = 2.0


def mark_this_run() -> str:
    """A new run id, appended to the marker every process started from now on inherits."""
    run_id = uuid.uuid4().hex[:16]
    parent = os.environ.get(MARKER)
    os.environ[MARKER] = f"{parent}/{run_id}" if parent else run_id
    return run_id


@dataclass(frozen=True)
class Leak:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.cmdline}"


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _marked(process: psutil.Process, run_id: str) -> bool:
    try:
        return run_id in process.environ().get(MARKER, "").split("/")
    except psutil.Error:  # gone, or not ours to read
        return False


def started_by_this_run(run_id: str, exclude: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """Running processes this run started: our descendants and every process carrying ``run_id``.

    This process, its ancestors (the shell, an outer pytest) and ``exclude`` (xdist's workers) do not count.
    """
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents()), *exclude}
    found = {p.pid: p for p in me.children(recursive=True)}
    for process in psutil.process_iter():
        if process.pid not in found and process.pid not in skip and _marked(process, run_id):
            found[process.pid] = process
    return [p for pid, p in sorted(found.items()) if pid not in skip and _running(p)]


def _describe(process: psutil.Process) -> Leak:
    try:
        cmdline = " ".join(" ".join(process.cmdline()).split()) or process.name()
    except psutil.Error:
        cmdline = "(exited)"
    return Leak(process.pid, cmdline if len(cmdline) <= 300 else cmdline[:297] + "...")


def kill_leftovers(run_id: str, exclude: frozenset[int] = frozenset(), grace: float = GRACE_SECONDS) -> list[Leak]:
    """Kill what this run left running (process groups they lead too) and name them; [] if nothing was left."""
    candidates = started_by_this_run(run_id, exclude)
    deadline = time.monotonic() + grace
    while candidates and time.monotonic() < deadline:  # a server being stopped: let it finish exiting
        time.sleep(0.1)
        candidates = [p for p in candidates if _running(p)]
    if not candidates:
        return []
    leaks = [_describe(p) for p in candidates]
    protected = _own_groups()
    victims: dict[int, psutil.Process] = {}
    for process in candidates:
        victims[process.pid] = process
        try:
            victims.update((child.pid, child) for child in process.children(recursive=True))
            pgid = os.getpgid(process.pid)
            if pgid == process.pid and pgid not in protected:  # it leads its own group (start_new_session, a daemon)
                os.killpg(pgid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    for process in victims.values():
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(victims.values()), timeout=5)
    return leaks


def _own_groups() -> set[int]:
    """Process groups of this process and its ancestors: never killed as a whole."""
    groups = set()
    for process in [psutil.Process(), *psutil.Process().parents()]:
        try:
            groups.add(os.getpgid(process.pid))
        except (ProcessLookupError, PermissionError):
            pass
    return groups
