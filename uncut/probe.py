"""Diagnose a streaming endpoint from the client side: ``python -m uncut.probe URL``.

The article's debugging advice, as a tool: see where a cutoff happens, log
every chunk's arrival time, and tell a truncated response from a complete
one. Works on this service's SSE, text and OpenAI surfaces and on any other
SSE or chunked endpoint. The last line is a verdict word; the exit code is
0 only for OK:

    OK         the stream ended properly and arrived as it was produced
    BUFFERED   the first byte came only near the end: something buffers
    CUT OFF    no end event / [DONE] / chunked terminator: the stream was cut
    IDLE-RISK  a silence close to a common proxy idle timeout
    ERROR      the server said so (an error event, or an HTTP error)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import httpx

from uncut.sse import Comment, ServerSentEvent, SSEParser

__all__ = ["Report", "main", "probe", "verdict"]

EXIT_CODES = {"OK": 0, "BUFFERED": 3, "CUT OFF": 4, "IDLE-RISK": 5, "ERROR": 6}
# Idle limits in front of many deployments (API Gateway, HAProxy's stock config, nginx/ALB, Cloudflare).
COMMON_IDLE_TIMEOUTS = (30, 50, 60, 100)


@dataclass
class Arrival:
    at: float  # seconds since the request was sent
    kind: str  # token, heartbeat, start, end, error, done, chunk, ...
    detail: str = ""


@dataclass
class Report:
    url: str
    status: int | None = None
    http_version: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    time_to_first_byte: float | None = None
    time_to_first_token: float | None = None
    duration: float = 0.0
    bytes: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    largest_gap: float = 0.0
    largest_gap_at: float | None = None
    transport_error: str | None = None
    ended_properly: bool = False
    error_event: str | None = None
    verdict: str = "OK"
    reason: str = ""

    def count(self, kind: str) -> int:
        return sum(1 for a in self.arrivals if a.kind == kind)


def header_warnings(headers: httpx.Headers, http_version: str) -> list[str]:
    """Response headers that make streams arrive late, all at once, or cut."""
    warnings = []
    if "content-length" in headers:
        warnings.append("Content-Length on a stream: the response is not streamed (or a proxy buffered it whole)")
    encoding = headers.get("content-encoding", "")
    if encoding and encoding != "identity":
        warnings.append(f"Content-Encoding: {encoding}: compression buffers a stream; keep streams out of gzip")
    if headers.get("x-accel-buffering", "").lower() != "no":
        warnings.append("no X-Accel-Buffering: no — behind nginx with proxy_buffering on, tokens would arrive at the end")
    if http_version == "HTTP/1.0" and "chunked" not in headers.get("transfer-encoding", ""):
        warnings.append("HTTP/1.0 without chunked encoding: a cut stream looks complete to the client")
    if "no-cache" not in headers.get("cache-control", ""):
        warnings.append("no Cache-Control: no-cache — a cache in between may hold the stream")
    return warnings


class _Reader:
    """Turns body chunks into arrivals, for whatever kind of stream this is."""

    def __init__(self, report: Report, content_type: str) -> None:
        self.report = report
        self.sse = content_type.startswith("text/event-stream")
        self.parser = SSEParser()

    def feed(self, at: float, chunk: bytes) -> None:
        if not self.sse:
            self.report.arrivals.append(Arrival(at, "chunk", chunk[:40].decode("utf-8", "replace")))
            return
        for item in self.parser.feed(chunk):
            if isinstance(item, Comment):
                self.report.arrivals.append(Arrival(at, "heartbeat", item.text))
            else:
                self._event(at, item)

    def _event(self, at: float, event: ServerSentEvent) -> None:
        report = self.report
        if event.event == "message":  # OpenAI-style `data:` lines
            if event.data.strip() == "[DONE]":
                report.ended_properly = True
                report.arrivals.append(Arrival(at, "done"))
                return
            try:
                payload = json.loads(event.data)
            except ValueError:
                report.arrivals.append(Arrival(at, "message", event.data[:40]))
                return
            if isinstance(payload, dict) and "error" in payload:
                report.error_event = json.dumps(payload["error"])[:200]
                report.arrivals.append(Arrival(at, "error", report.error_event))
                return
            report.arrivals.append(Arrival(at, "token", event.data[:40]))
            return
        kind = event.event
        if kind == "end":
            report.ended_properly = True
        elif kind == "error":
            report.error_event = event.data[:200]
        elif kind == "heartbeat":
            pass
        report.arrivals.append(Arrival(at, kind, f"{event.id or ''} {event.data[:40]}".strip()))


_REPORTED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "cache-control",
        "x-accel-buffering",
        "x-request-id",
        "connection",
        "server",
    }
)


def _request(headers: Sequence[str], data: str | None, json_body: str | None) -> tuple[dict[str, str], bytes | None]:
    """The request's headers (``Name: value`` strings over the defaults) and body; a bad ``--json`` raises here."""
    request_headers = {"Accept": "text/event-stream, text/plain;q=0.9, */*;q=0.5", "Accept-Encoding": "gzip"}
    for header in headers:
        name, _, value = header.partition(":")
        request_headers[name.strip()] = value.strip()
    if json_body is not None:
        json.loads(json_body)  # a usage error
        request_headers.setdefault("Content-Type", "application/json")
        return request_headers, json_body.encode()
    return request_headers, None if data is None else data.encode()


def probe(
    url: str,
    *,
    method: str | None = None,
    data: str | None = None,
    json_body: str | None = None,
    headers: Sequence[str] = (),
    timeout: float = 120.0,
) -> Report:
    """Send the request, read the stream to its end (or the timeout), and record everything."""
    report = Report(url=url)
    request_headers, content = _request(headers, data, json_body)
    method = method or ("POST" if content is not None else "GET")

    started = time.monotonic()
    reader: _Reader | None = None
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            with client.stream(method, url, content=content, headers=request_headers) as response:
                report.status = response.status_code
                report.http_version = response.http_version
                report.headers = {k: v for k, v in response.headers.items() if k in _REPORTED_HEADERS}
                content_type = response.headers.get("content-type", "")
                streaming = content_type.startswith(("text/event-stream", "text/plain"))
                if streaming:
                    report.warnings = header_warnings(response.headers, response.http_version)
                reader = _Reader(report, content_type)
                for chunk in response.iter_bytes():
                    at = time.monotonic() - started
                    if report.time_to_first_byte is None:
                        report.time_to_first_byte = at
                    report.bytes += len(chunk)
                    reader.feed(at, chunk)
                    if at > timeout:
                        report.transport_error = f"gave up after --timeout {timeout:g}s"
                        break
                if not reader.sse and response.status_code < 400 and report.transport_error is None:
                    report.ended_properly = True  # the chunked terminator (or Content-Length) arrived
    except httpx.TimeoutException:
        report.transport_error = f"no data for {timeout:g}s (timeout)"
    except httpx.TransportError as exc:
        report.transport_error = f"{type(exc).__name__}: {exc}"
    report.duration = time.monotonic() - started
    _summarise(report)
    return report


def _summarise(report: Report) -> None:
    times = [a.at for a in report.arrivals]
    tokens = [a.at for a in report.arrivals if a.kind in ("token", "chunk")]
    report.time_to_first_token = tokens[0] if tokens else None
    edges = ([report.time_to_first_byte] if report.time_to_first_byte is not None else []) + times + [report.duration]
    for before, after in zip(edges, edges[1:]):
        if after - before > report.largest_gap:
            report.largest_gap, report.largest_gap_at = after - before, before
    report.verdict, report.reason = verdict(report)


def verdict(report: Report, idle_threshold: float = 20.0) -> tuple[str, str]:
    """The word and the reason, most serious first."""
    last = report.arrivals[-1] if report.arrivals else None
    last_text = f"the last thing received was {last.kind} {last.detail!r} at {last.at:.2f}s" if last else "nothing was received"
    if report.status is None:
        return "ERROR", f"no response: {report.transport_error}"
    if report.status >= 400:
        return "ERROR", f"HTTP {report.status}"
    if report.error_event:
        return "ERROR", f"the server sent an error event: {report.error_event}"
    if not report.ended_properly:
        why = report.transport_error or "the response ended without an end event or [DONE]"
        return "CUT OFF", f"at {report.duration:.2f}s: {why}; {last_text}"
    if report.duration >= 0.5 and report.time_to_first_byte is not None and report.time_to_first_byte >= 0.8 * report.duration:
        first = report.time_to_first_byte
        return "BUFFERED", f"first byte at {first:.2f}s of {report.duration:.2f}s: something in between holds the stream"
    if report.largest_gap >= idle_threshold:
        near = [t for t in COMMON_IDLE_TIMEOUTS if t >= report.largest_gap] or [COMMON_IDLE_TIMEOUTS[-1]]
        return "IDLE-RISK", (
            f"a {report.largest_gap:.1f}s silence at {report.largest_gap_at or 0:.1f}s: close to the {near[0]}s idle timeout "
            "of common proxies; send heartbeats more often"
        )
    return "OK", f"{report.count('token') + report.count('chunk')} tokens in {report.duration:.2f}s, largest gap {report.largest_gap:.2f}s"


def render(report: Report, timeline: bool) -> str:
    lines = [f"{report.http_version or '-'} {report.status}  {report.url}"]
    lines += [f"  {name}: {value}" for name, value in sorted(report.headers.items())]
    lines += [f"warning: {w}" for w in report.warnings]
    ttfb = "-" if report.time_to_first_byte is None else f"{report.time_to_first_byte:.3f}s"
    ttft = "-" if report.time_to_first_token is None else f"{report.time_to_first_token:.3f}s"
    lines.append(f"time to first byte {ttfb}, first token {ttft}, duration {report.duration:.3f}s, {report.bytes} bytes")
    lines.append(
        f"tokens {report.count('token') + report.count('chunk')}, heartbeats {report.count('heartbeat')}, "
        f"largest gap {report.largest_gap:.3f}s" + (f" at {report.largest_gap_at:.3f}s" if report.largest_gap_at is not None else "")
    )
    if timeline:
        lines += [f"  +{a.at:8.3f}s  {a.kind:<9} {a.detail}" for a in report.arrivals]
    if report.transport_error:
        lines.append(f"transfer: {report.transport_error}")
    lines.append(f"{report.verdict}: {report.reason}")
    return "\n".join(lines)


def plot(report: Report, path: str) -> None:
    """A 1000x300 px PNG: tokens, heartbeats, the end or the cut, and the largest gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    styles = {
        "token": ("|", "tab:blue", 1.0),
        "chunk": ("|", "tab:blue", 1.0),
        "heartbeat": ("o", "tab:gray", 0.5),
        "start": ("^", "tab:green", 1.5),
        "end": ("s", "tab:green", 1.5),
        "done": ("s", "tab:green", 1.5),
        "error": ("X", "tab:red", 1.5),
    }
    for kind, (marker, colour, y) in styles.items():
        xs = [a.at for a in report.arrivals if a.kind == kind]
        if xs:
            ax.scatter(xs, [y] * len(xs), marker=marker, color=colour, s=80, label=f"{kind} ({len(xs)})")
    if report.largest_gap_at is not None and report.largest_gap > 0:
        ax.axvspan(
            report.largest_gap_at,
            report.largest_gap_at + report.largest_gap,
            color="tab:orange",
            alpha=0.15,
            label=f"largest gap {report.largest_gap:.2f}s",
        )
    if report.verdict == "CUT OFF":
        ax.axvline(report.duration, color="tab:red", linewidth=2, label=f"cut at {report.duration:.2f}s")
    ax.set_xlim(0, max(report.duration, 0.01) * 1.05)
    ax.set_ylim(0, 2)
    ax.set_yticks([])
    ax.set_xlabel("seconds since the request")
    ax.set_title(f"{report.verdict}: {report.url}", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="uncut-probe",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("url")
    parser.add_argument("-X", "--method", help="default: POST with a body, else GET")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--data", help="request body, sent as is")
    body.add_argument("--json", dest="json_body", metavar="JSON", help="request body as JSON (sets Content-Type), like curl --json")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds (default %(default)s)")
    parser.add_argument("--idle-threshold", type=float, default=20.0, help="a silence this long is IDLE-RISK (default %(default)s s)")
    parser.add_argument("--timeline", action="store_true", help="print every arrival with its time")
    parser.add_argument("--plot", metavar="PNG", help="draw the arrival timeline to this PNG file")
    parser.add_argument("--json-report", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)

    try:
        report = probe(args.url, method=args.method, data=args.data, json_body=args.json_body, headers=args.header, timeout=args.timeout)
    except ValueError as exc:
        parser.error(f"--json is not valid JSON: {exc}")
    report.verdict, report.reason = verdict(report, args.idle_threshold)
    if args.plot:
        plot(report, args.plot)
    if args.json_report:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(render(report, args.timeline))
    return EXIT_CODES[report.verdict]


if __name__ == "__main__":
    sys.exit(main())
