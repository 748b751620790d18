"""Pieces of the rate-limit benchmark: servers on loopback, a bounded load generator,
and Redis round trips counted from INFO commandstats."""
import os
import sys
import threading
import time

import redis
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402


def bench_server(env, workers):
    """gunicorn -c conf/gunicorn.conf.py bench.ratelimit_wsgi:app with gevent workers."""
    return Gunicorn({"GATEWAY_ACCESS_LOG": "0", "GUNICORN_LOG_LEVEL": "warning", **env},
                    workers=workers, app_uri="bench.ratelimit_wsgi:app")


def command_calls(client):
    """Commands Redis has executed, by name, minus the INFO calls we make ourselves.

    commandstats also counts the commands a Lua script runs inside Redis; those are not
    round trips, so callers separate them (see round_trips)."""
    stats = client.info("commandstats")
    return {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def round_trips(before, after, script_inner_commands):
    """Client round trips between two command_calls snapshots, and the full breakdown."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta = {name: calls for name, calls in delta.items() if calls}
    scripted = script_inner_commands if delta.get("evalsha") or delta.get("eval") else {}
    return sum(calls for name, calls in delta.items() if name not in scripted), delta


def run_load(url, requests_total, threads, max_seconds, headers_for):
    """Send ``requests_total`` GETs from ``threads`` keep-alive sessions, stopping at ``max_seconds``.

    Returns (completed, seconds, status counts)."""
    counter = iter(range(requests_total))
    lock = threading.Lock()
    statuses = {}
    deadline = time.monotonic() + max_seconds

    def worker():
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            status = session.get(url, headers=headers_for(n), timeout=10).status_code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    return sum(statuses.values()), elapsed, statuses


__all__ = ["bench_server", "PrivateRedis", "command_calls", "round_trips", "run_load", "redis"]
