"""The chaos soak: load and faults at the same time, and a check that nothing was lost.

``python -m bench.soak`` starts real parts on loopback (nginx from the
shipped conf, two service instances of two gevent workers each, a real
Redis, the local OpenAI-protocol upstream), drives N EventSource-like
clients through nginx while a seeded schedule injects faults (client cuts,
SIGHUP, SIGTERM and restart, kill -9 of a worker, an nginx reload, upstream
429/500/drops, a Redis restart), and then checks every stream's history:
one terminal event, the exact answer or an explicit typed error, no
sequence number missing or repeated, nothing ended silently, abandoned
runs stopped within the grace, one upstream generation per run.

- ``plan``: prompts, the answers they ask for, and the upstream's faults;
- ``cluster``: the processes, and the faults done to them;
- ``client``: the clients, each keeping a complete history;
- ``checks``: what every history must satisfy, and the summary line.
"""
