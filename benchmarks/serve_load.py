"""Serve under load: requests per second and latency of `memn2n serve` for 1, 8 and 32 keep-alive clients.

    python benchmarks/serve_load.py                                  # starts this checkout's `memn2n serve`
    python benchmarks/serve_load.py --repo /path/to/old --repo .     # each checkout's server in turn: before, after
    python benchmarks/serve_load.py --url http://127.0.0.1:8000/     # a server already running
    python benchmarks/serve_load.py --clients 1 4 --seconds 5 --request runs

Each client is a thread holding one keep-alive connection (http.client), asking as fast as it is
answered: POST /api/predict of the README's story and GET /api/runs in turn (--request picks one).
After --warmup untimed seconds, --seconds are timed: requests/s counts the answers that came in
them, p50 and p99 are of their latencies (request sent to body read). A server the script starts
runs in an empty temporary folder (so it answers with the bundled model), imports memn2n from its
--repo and is stopped afterwards. Prints a Markdown table, one row per checkout and client count.
Clients and server share the machine's cores: take figures on an otherwise idle machine, and
compare versions by running them in turn, A B A B (--rounds). The server answers 503 while 100
connections are open (web.MAX_CONNECTIONS): more clients than that count errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))
from local_server import started  # noqa: E402  (a sibling script)

README_STORY = ("Mary moved to the bathroom.\nJohn went to the hallway.\nWhere is Mary?\n"
                "Mary travelled to the kitchen.\nWhere is Mary?\n\nDaniel went back to the office.\nWhere is Daniel?\n")
REQUESTS = {"predict": ("POST", "/api/predict", json.dumps({"story": README_STORY}).encode()),
            "runs": ("GET", "/api/runs", None)}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--repo", type=Path, action="append", help="checkout whose server to start (repeatable; default: this one)")
parser.add_argument("--url", help="a server already running, instead of starting one")
parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
parser.add_argument("--seconds", type=float, default=10.0, help="timed, per client count")
parser.add_argument("--warmup", type=float, default=2.0, help="untimed, before each client count")
parser.add_argument("--request", choices=["both", *REQUESTS], default="both")
parser.add_argument("--rounds", type=int, default=1)
args = parser.parse_args()
if args.url and args.repo:
    parser.error("--url asks a running server; --repo starts one")
kinds = list(REQUESTS) if args.request == "both" else [args.request]


def load(url: str, clients: int) -> dict:
    """``clients`` threads asking ``url`` for --warmup then --seconds: the timed requests' figures."""
    parts = urlsplit(url)
    start = time.monotonic() + 0.5  # every thread connected and waiting
    timed_from, until = start + args.warmup, start + args.warmup + args.seconds
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        mine: dict[str, list[float]] = {kind: [] for kind in kinds}
        failed, turn = 0, index  # the clients' requests interleaved, not all predict at once
        time.sleep(max(0.0, start - time.monotonic()))
        while (sent := time.monotonic()) < until:
            kind = kinds[turn % len(kinds)]
            turn += 1
            method, path, body = REQUESTS[kind]
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()  # http.client opens a new connection at the next request
                ok = False
            answered = time.monotonic()
            if sent >= timed_from and answered <= until:
                if ok:
                    mine[kind].append(answered - sent)
                else:
                    failed += 1
        connection.close()
        with lock:
            for kind in kinds:
                latencies[kind] += mine[kind]
            errors[0] += failed

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = sorted(t for kind in kinds for t in latencies[kind])
    if len(every) < 2:
        sys.exit(f"{url}: {len(every)} answers in {args.seconds} s with {clients} clients ({errors[0]} errors)")
    percent = statistics.quantiles(every, n=100, method="inclusive")
    return {"requests_per_s": len(every) / args.seconds, "p50_ms": 1000 * percent[49], "p99_ms": 1000 * percent[98],
            **{f"{kind}_p50_ms": 1000 * statistics.median(latencies[kind]) for kind in kinds if latencies[kind]},
            "errors": errors[0]}


def commit(repo: Path) -> str:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "not a git checkout"


columns = ["requests_per_s", "p50_ms", "p99_ms", *(f"{kind}_p50_ms" for kind in kinds), "errors"]
print(f"`python {' '.join(sys.argv)}` on {platform.node()} ({os.cpu_count()} CPUs, {platform.platform()}); "
      f"{args.seconds:g} s timed per row, requests: {', '.join(REQUESTS[k][0] + ' ' + REQUESTS[k][1] for k in kinds)}\n")
print("| server | clients | " + " | ".join(c.replace("_", " ") for c in columns) + " |")
print("|---|---:|" + "---:|" * len(columns), flush=True)
servers = [("--url " + args.url, None)] if args.url else [
    (f"{repo} ({commit(repo)})", repo) for repo in (r.resolve() for r in args.repo or [Path(__file__).resolve().parents[1]])]
for _ in range(args.rounds):
    for name, repo in servers:
        with started(repo) if repo else nullcontext(args.url) as url:
            for clients in args.clients:
                figures = load(url, clients)
                cells = [f"{figures[c]:.0f}" if c in ("requests_per_s", "errors") else f"{figures.get(c, float('nan')):.1f}"
                         for c in columns]
                print(f"| {name} | {clients} | " + " | ".join(cells) + " |", flush=True)
