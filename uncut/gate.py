"""The admission gate: WSGI middleware that admits, lines up or refuses a run before the app builds its request.

A refusal decided in a view costs the worker the whole framework on the way
(the request object, the key check, the body read and validated, the error
rendered): about 2.7 ms of CPU in Flask, so a worker at four times its
capacity spends about half a core saying no. The gate decides first, from
the WSGI environ alone: the method and path say whether the request starts
a run (``starts_run``), ``client`` names whose share it takes, and the
worker's ``StreamLimiter`` (uncut.admission) admits it, lines it up, or
refuses it with its ``Retry-After``. A request waiting its turn waits here,
before its body is read.

An admitted request carries its slot in ``environ[ADMITTED_KEY]``; the run
the view starts claims it (``Streams.stream``), and from then on the slot is
the run's, given back when the run ends. A view that starts no run after all
(a ``400``, a ``401``) leaves it unclaimed, and it is given back as soon as
the view returns: a view decides before it streams, so a run it starts is
started by then.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from uncut.admission import Refusal, StreamLimiter, retry_signal

__all__ = ["ADMITTED_KEY", "AdmissionGate"]

ADMITTED_KEY = "uncut.admitted"
_STATUS = {503: "503 Service Unavailable", 429: "429 Too Many Requests"}
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class GateSlot:
    """A slot the gate took for one request, until a run claims it or the response closes."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def claim(self) -> Callable[[], None] | None:
        """The slot's release, handed to the run (once); None if already claimed."""
        release, self._release = self._release, None
        return release

    def give_back(self) -> None:
        release = self.claim()
        if release is not None:
            release()


class AdmissionGate:
    """Wraps a WSGI app; requests for which ``starts_run(environ)`` is true are admitted here first.

    ``limiter`` is called for the worker's ``StreamLimiter`` (it may be
    built after the gate, as the Flask extension builds it). ``client``
    names the request's client from the environ, as the app would (None:
    counted in all, but in no client's share). ``openai_shape(environ)``
    says whether a refusal takes OpenAI's error shape; ``headers(environ)``
    adds the headers the app puts on every response (security, CORS), which
    a refusal answered here would otherwise lack.
    """

    def __init__(
        self,
        app: WSGIApp,
        limiter: Callable[[], StreamLimiter],
        *,
        starts_run: Callable[[Mapping[str, Any]], bool],
        client: Callable[[Mapping[str, Any]], str | None] = lambda environ: environ.get("REMOTE_ADDR"),
        openai_shape: Callable[[Mapping[str, Any]], bool] = lambda environ: str(environ.get("PATH_INFO", "")).startswith("/v1/"),
        on_refusal: Callable[[Refusal, Mapping[str, Any]], None] | None = None,
        headers: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda environ: [],
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.starts_run = starts_run
        self.client = client
        self.openai_shape = openai_shape
        self.on_refusal = on_refusal
        self.headers = headers

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.starts_run(environ):
            return self.app(environ, start_response)
        admitted = self.limiter().try_acquire(self.client(environ), retry_signal(environ))
        if isinstance(admitted, Refusal):
            if self.on_refusal is not None:
                self.on_refusal(admitted, environ)
            return refusal_response(start_response, admitted, self.openai_shape(environ), self.headers(environ))
        slot = GateSlot(admitted)
        environ[ADMITTED_KEY] = slot
        try:
            return self.app(environ, start_response)
        finally:
            slot.give_back()  # unless the view started a run, which has it now


def refusal_response(
    start_response: Callable[..., Any], refusal: Refusal, openai_shape: bool, extra: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """A refusal as a WSGI response: its JSON body, status and ``Retry-After`` headers."""
    body = refusal.body(openai_shape)
    start_response(
        _STATUS[refusal.status],
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *refusal.headers(),
            *extra,
        ],
    )
    return [body]
