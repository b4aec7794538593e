"""Stopping all of what a test started: the process, what it forked, and, for a harness, its whole group.

A server's master that is killed leaves its workers behind (nginx's and apache's keep serving, a
gunicorn worker notices only later), and ``subprocess.run(timeout=...)`` kills only the child it
started. These helpers end the rest too, on every path: a timeout, an assertion, a skip, Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Sequence

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_all(processes: Sequence[psutil.Process], timeout: float = 5.0) -> None:
    """SIGKILL each one still alive (psutil checks the pid was not reused), and wait for them."""
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=timeout)


def stop_process(process: subprocess.Popen[Any] | None, signum: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """``signum`` to the process; SIGKILL if it outlives ``timeout``; then SIGKILL whatever it forked that is still there."""
    if process is None or process.poll() is not None:
        return  # reaped: its pid may be another process's by now
    forked = descendants(process.pid)  # taken before the signal: once the master is gone, its orphans are no one's children
    try:
        process.send_signal(signum)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    kill_all([child for child in forked if _running(child)])


def run_bounded(command: Sequence[str], timeout: float, grace: float = 10.0, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` for a harness that starts servers of its own: on a timeout or an interrupt, the harness
    gets SIGINT (its ``finally`` stops its servers), then its group and everything it forked get SIGKILL."""
    process = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=kwargs.pop("stdout", subprocess.PIPE),
        stderr=kwargs.pop("stderr", subprocess.PIPE),
        **kwargs,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        stop_group(process, grace)
        raise
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)


def stop_group(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGINT to a group leader started with ``start_new_session``, then SIGKILL to its group and its descendants."""
    forked = descendants(process.pid) if process.poll() is None else []  # once reaped, its pid may be another's
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
    finally:  # even on a second Ctrl-C
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if process.poll() is None:
            process.kill()
            process.wait(5)
        kill_all([child for child in forked if _running(child)])


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
