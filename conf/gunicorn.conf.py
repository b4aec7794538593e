"""gunicorn settings for streaming LLM output: ``gunicorn -c conf/gunicorn.conf.py wsgi:app``.

Every setting says what it does and why. Command-line flags override this
file (the tests use that for negative controls, e.g. ``-k sync``), and so
do the GUNICORN_* environment variables read below. Keep the timeout
budget in conf/README.md in mind when you change a number here.
"""

import os
import re
import sys

from gunicorn.glogging import Logger

# ---------------------------------------------------------------------------
# Server socket
#
#   bind - Where to listen. Loopback by default: put a proxy in front
#          (conf/nginx.conf and friends) or set GUNICORN_BIND=0.0.0.0:8000
#          in a container.
#   backlog - Connections the kernel queues while workers are busy.
# ---------------------------------------------------------------------------

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
backlog = 2048

# ---------------------------------------------------------------------------
# Worker processes
#
#   worker_class - gevent: each stream is a greenlet, so one process holds
#          thousands of open streams, and a long stream never blocks the
#          worker's heartbeat to the master. The sync worker would hold one
#          stream per process and be killed after `timeout` seconds.
#   workers - Processes. One per core is the usual rule, but the in-memory
#          event log lives in one process: keep 1 unless clients never
#          resume or you use a shared store.
#   worker_connections - Most simultaneous clients per gevent worker;
#          each open stream holds one.
#   timeout - Under gevent this is the worker's heartbeat to the master,
#          not a request limit: it fires only if something blocks the hub
#          (CPU-bound work, an unpatched C socket). Streams may run far
#          longer than this.
#   graceful_timeout - On SIGTERM/SIGHUP a worker stops accepting and gives
#          running streams this long to finish before cutting them. Keep it
#          at or above WEBAPP_MAX_STREAM_SECONDS (default 300) so a deploy
#          never cuts a stream that was allowed to run.
#   keepalive - Seconds an idle client connection stays open between
#          requests. Above the 60 s idle timeout of common load balancers,
#          so the balancer, not gunicorn, closes idle connections (otherwise
#          it may send a request on a connection gunicorn just closed: 502).
#   max_requests - 0: never recycle workers on a request count; recycling
#          would cut streams that the dying worker still holds.
#   limit_request_line, limit_request_fields, limit_request_field_size -
#          gunicorn's own limits (its defaults, written out): a longer
#          request line gets 414, more or longer headers 431, a lowercase
#          method 400, each as gunicorn's HTML page naming the limit, before
#          the app sees the request. The shipped nginx.conf answers all of
#          these with JSON instead; exposed directly, gunicorn's pages are
#          what clients see (conf/README.md, "Requests refused before the app").
# ---------------------------------------------------------------------------

worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
timeout = 30
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "310"))
keepalive = 75
max_requests = 0
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# ---------------------------------------------------------------------------
# Name resolution under gevent
#
#   GEVENT_RESOLVER=ares - gevent's default resolver runs every getaddrinfo
#          in a small thread pool, and each call waits for a pool thread and
#          then for the busy worker to hand over the GIL: a burst of new
#          streams queues behind its own upstream connects (bench/: TTFT p99
#          7.7 s at C=400 with the thread pool, 3.9 s with ares). c-ares
#          resolves inside the event loop. An environment value wins; gevent
#          reads it when the worker first resolves a name.
# ---------------------------------------------------------------------------

os.environ.setdefault("GEVENT_RESOLVER", "ares")

# ---------------------------------------------------------------------------
# Application loading
#
#   preload_app - False. The gevent worker monkey-patches the standard
#          library when it starts; preloading would import ssl, openai and
#          truststore in the master before that, which breaks TLS or makes
#          it silently block the whole worker. The app (and its model
#          client) is built in each worker, after patching.
# ---------------------------------------------------------------------------

preload_app = False

# ---------------------------------------------------------------------------
# Logging
#
#   accesslog - "-" writes the access log to stdout; one line per request,
#          written when the stream ends, with its duration.
#   errorlog - "-" is stderr. The app's per-stream summary lines go there.
#   logger_class - gunicorn's logger, with stream ids and prompts taken out
#          of the access log's request line: a stream id in a URL
#          (/api/streams/<id>/events, ?last_event_id=) is what a reader
#          needs to follow it, and a GET's ?message= is someone's prompt.
#          Access logs travel further than the app's own logs.
# ---------------------------------------------------------------------------

_STREAM_ID = re.compile(r"s_[0-9a-f]{16}")
_PROMPT = re.compile(r"(?<=[?&]message=)[^&\s]*")


def redact(text):
    """A request line or query without stream ids or prompts."""
    return _PROMPT.sub("<prompt>", _STREAM_ID.sub("<stream>", text))


class RedactingLogger(Logger):
    """gunicorn's logger; the access log's request line, path and query are redacted."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "{raw_uri}e", "{query_string}e", "{path_info}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms


accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # GUNICORN_ACCESSLOG= (empty): none
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
logger_class = RedactingLogger

# ---------------------------------------------------------------------------
# Proxies
#
#   forwarded_allow_ips - Trust X-Forwarded-* only from the local proxy.
# ---------------------------------------------------------------------------

forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# ---------------------------------------------------------------------------
# Control
#
#   control_socket_disable - gunicorn 23+ opens a control socket at one
#          fixed path per user; two instances on one host (a blue/green
#          deploy, the tests) would fight over it. Signals (TERM, HUP, TTIN)
#          do everything this service needs.
# ---------------------------------------------------------------------------

control_socket_disable = True

# ---------------------------------------------------------------------------
# Server hooks
#
#   on_starting - Prometheus metrics from every worker go to files in
#          PROMETHEUS_MULTIPROC_DIR so /metrics on any worker shows them all.
#          Uses the directory you set, or a fresh temporary one; stale files
#          from an earlier run are removed.
#   post_worker_init - Lets the app see its worker begin a graceful shutdown
#          (SIGTERM, or SIGHUP's rolling restart), so a stream that cannot
#          finish within graceful_timeout ends with an explicit, retryable
#          `server_shutdown` error event before the worker cuts it, and
#          keeps a draining worker alive while its runs still produce (with
#          a shared store their readers may already have moved to another
#          worker; gunicorn waits only for its requests). Keep this hook if
#          you write your own gunicorn config (GUNICORN_HOLD_FOR_RUNS=false
#          turns the hold off, for a negative control). It also tunes
#          the garbage collector once the app is loaded: freezes what
#          start-up built and collects young objects every 50,000
#          allocations instead of 700 (bench/: +25-30 % tokens/s under
#          load). GUNICORN_TUNE_GC=false keeps CPython's defaults.
#   child_exit - Drops a dead worker's live gauges (open streams) from the
#          aggregated metrics.
# ---------------------------------------------------------------------------


def on_starting(server):
    import glob
    import tempfile

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="webapp-metrics-")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def post_worker_init(worker):
    from uncut.gunicorn import tune_gc
    from uncut.shutdown import hold_worker_for_runs, watch_gunicorn_worker

    watch_gunicorn_worker(worker)
    if os.environ.get("GUNICORN_HOLD_FOR_RUNS", "true").strip().lower() not in ("0", "false", "no"):
        hold_worker_for_runs(worker)
    tune_gc()  # the app is loaded: freeze it, and collect less often (uncut/gunicorn.py tune_gc, GUNICORN_TUNE_GC)
    # gevent runs queued callbacks (a spawned request handler, a reader woken by its producer) for at most
    # the switch interval per loop turn, then polls sockets again. 5 ms, CPython's default, let a
    # backlog of wake-ups hold new requests for seconds under load; 20 ms cut the first byte's p99
    # under 2x overload from 1.06 s to 0.25 s (bench/CHANGES.md).
    sys.setswitchinterval(float(os.environ.get("GUNICORN_SWITCH_INTERVAL", "0.02")))


def child_exit(server, worker):
    from uncut.prometheus import mark_worker_dead

    mark_worker_dead(worker.pid)
