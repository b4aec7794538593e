"""Internal: greenlets under gevent, threads elsewhere, behind one small interface.

gunicorn's gevent worker monkey-patches the standard library before it loads
the app, so we decide per call, not at import: a producer started while
gevent is patched is a greenlet that can be killed while it is blocked in a
socket read (which is how a dropped client closes the upstream call at once);
without gevent it is a daemon thread that stops at its next chunk.
"""

from __future__ import annotations

import logging
import select
import socket
import sys
import threading
from typing import Any, Callable, Mapping, Protocol

log = logging.getLogger(__name__)

# How often the thread-mode socket watcher re-checks whether it should stop.
_THREAD_WATCH_TICK_SECONDS = 1.0


def under_gevent() -> bool:
    """True when gevent has patched the socket module (gunicorn's gevent workers).

    Without gevent loaded nothing can have patched anything: gevent is
    optional, and the core imports it only once it is the one serving.
    """
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


# gevent's Waiter and hub, bound once by signal_factory when it first finds gevent serving: a stream
# hands off once per token, and an import per wait would cost more than the wait.
_Waiter: Any = None
_get_hub: Any = None


class Signal(Protocol):
    """A flag one side sets and the other waits on (``threading.Event``'s interface)."""

    def set(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class _GeventSignal:
    """A one-shot flag for one waiting greenlet: gevent's ``Waiter`` and a raw loop timer.

    What ``gevent.event.Event`` does for this case at about half the cost
    per hand-off (its timed wait builds a pure-Python ``Timeout`` each
    time), and a stream hands off once per token. ``set`` must be called
    from the hub's thread, as every greenlet is; the hub switches to the
    waiter on its next turn, as it does for an Event.
    """

    __slots__ = ("_is_set", "_waiter", "_loop")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: Any = None
        if _get_hub is None:
            _bind_gevent()
        self._loop = _get_hub().loop

    def set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        if self._waiter is not None:
            self._loop.run_callback(self._waiter.switch, True)

    def is_set(self) -> bool:
        return self._is_set

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if ``timeout`` seconds pass first. One waiter at a time."""
        if self._is_set:
            return True
        waiter = self._waiter = _Waiter()
        if self._is_set:  # set while the Waiter was built (a finalizer the allocation ran)
            self._waiter = None
            return True
        timer = None
        if timeout is not None:
            timer = self._loop.timer(max(timeout, 0.0))
            timer.start(waiter.switch, False)
        try:
            return bool(waiter.get())
        finally:
            self._waiter = None
            if timer is not None:
                timer.close()


def short_lock() -> Any:
    """A lock for critical sections that never block or switch: a C lock even under gevent.

    gevent's patched ``threading.Lock`` is a Python-level semaphore, taken
    twice per token by the event log. An OS lock is safe under gevent only
    where nothing inside it can switch greenlets (no I/O, no waits). It is
    the re-entrant kind, so that the one thing that can still run inside
    such a section, a finalizer the garbage collector calls there, cannot
    deadlock the whole worker by taking the same lock again.
    """
    if under_gevent():
        from gevent import monkey

        return monkey.get_original("_thread", "RLock")()
    return threading.RLock()


def signal_factory() -> Callable[[], Signal]:
    """A one-waiter signal on the hub under gevent; ``threading.Event`` (a Condition in Python) otherwise."""
    if not under_gevent():
        return threading.Event
    _bind_gevent()
    return _GeventSignal


def _bind_gevent() -> None:
    global _Waiter, _get_hub
    if _Waiter is None:
        from gevent.hub import Waiter, get_hub

        _Waiter, _get_hub = Waiter, get_hub


class Task(Protocol):
    greenlet: Any  # the greenlet that runs it, or None for a thread

    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


class _GreenletTask:
    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        import gevent

        self.greenlet = gevent.spawn(fn, *args)

    def kill(self) -> None:
        self.greenlet.kill(block=False)

    def join(self, timeout: float | None = None) -> None:
        self.greenlet.join(timeout)


class _ThreadTask:
    greenlet = None

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._thread = threading.Thread(target=fn, args=args, daemon=True, name=getattr(fn, "__name__", "task"))
        self._thread.start()

    def kill(self) -> None:
        """Threads cannot be interrupted; the task notices its own stop flag."""

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def spawn(fn: Callable[..., Any], *args: Any) -> Task:
    """Run ``fn(*args)`` concurrently: a greenlet under gevent, else a thread."""
    return _GreenletTask(fn, *args) if under_gevent() else _ThreadTask(fn, *args)


def _peer_closed(sock: socket.socket) -> bool:
    """After the socket turned readable: True on EOF or reset, False if the peer sent data."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, TimeoutError):  # nothing to read after all (a spurious wake-up): still there
        return False
    except OSError:
        return True  # reset, broken pipe, closed: the client is gone


def _watch_thread(sock: socket.socket, on_eof: Callable[[], None], stop: threading.Event) -> None:
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    except (OSError, ValueError):
        return
    while not stop.is_set():
        if poller.poll(_THREAD_WATCH_TICK_SECONDS * 1000):
            if not stop.is_set() and _peer_closed(sock):
                on_eof()
            return


class _GeventSocketWatch:
    """A read watcher on the event loop, no greenlet: an open stream costs a watcher, not a stack.

    The loop calls ``_readable`` in the hub, where nothing may block, so the
    check (a peek at the socket) and ``on_eof`` (which takes locks) run in a
    greenlet of their own, spawned only when the client sent bytes or left.
    """

    def __init__(self, sock: socket.socket, on_eof: Callable[[], None]) -> None:
        from gevent import get_hub

        self._sock = sock
        self._on_eof = on_eof
        self._watcher = get_hub().loop.io(sock.fileno(), 1)  # 1: readable
        self._watcher.start(self._readable)

    def _readable(self) -> None:
        import gevent

        self._watcher.stop()
        gevent.spawn(self._check)

    def _check(self) -> None:
        if _peer_closed(self._sock):
            self._on_eof()

    def stop(self) -> None:
        self._watcher.stop()
        self._watcher.close()


class _ThreadSocketWatch:
    def __init__(self, sock: socket.socket, on_eof: Callable[[], None]) -> None:
        self._stop = threading.Event()
        self._task = _ThreadTask(_watch_thread, sock, on_eof, self._stop)

    def stop(self) -> None:
        self._stop.set()


class SocketWatch:
    """Calls ``on_eof`` once if the client closes its socket before ``stop()``.

    A client that sends more bytes (a pipelined request) ends the watch
    quietly: it is still there.
    """

    def __init__(self, sock: socket.socket, on_eof: Callable[[], None]) -> None:
        self._watch = _GeventSocketWatch(sock, on_eof) if under_gevent() else _ThreadSocketWatch(sock, on_eof)

    def stop(self) -> None:
        self._watch.stop()


def client_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """The client's socket as the WSGI server exposes it, if it does."""
    for key in ("gunicorn.socket", "gunicorn.sock", "werkzeug.socket"):
        sock: socket.socket | None = environ.get(key)
        if sock is not None and hasattr(sock, "fileno"):
            return sock
    return None
