"""Profile (not a test): where an uncached endpoint's CPU goes, in-process.

    .venv/bin/python bench/profile_endpoints.py [--requests 300] [--top 25] [--redis] [--cpu] [PATH ...]

(``{call}`` and ``{customer}`` in a PATH stand for the id of the company's newest call
and most recently changed customer, e.g. ``/api/v1/calls/{call}``.)

Seeds the demo data into a temporary SQLite file, makes an API key (read scope) of the
demo pro company, and sends each PATH (default: the calls list) ``--requests`` times
through Flask's test client with ``Cache-Control: no-cache`` (the full pipeline; with
``--redis`` on a private Redis, else with in-process stores), under cProfile. Prints CPU microseconds per request and the functions with the
most cumulative and own time (wall-clock time by default; ``--cpu``: the process's CPU
time, so that time spent waiting for Redis or descheduled on a busy machine is not
counted, at the price of a larger overhead per call).
"""
import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_endpoints import make_keys  # noqa: E402
from bench.bench_services import seed, unlimited_policy  # noqa: E402
from tests.support.servers import PrivateRedis  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["/api/v1/calls?limit=25"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--redis", action="store_true",
                        help="a private Redis (as in production) instead of in-process stores")
    parser.add_argument("--cpu", action="store_true", help="profile CPU time, not wall-clock time")
    parser.add_argument("--callers", action="append", default=[],
                        help="also print who calls the functions matching this pattern")
    args = parser.parse_args()

    from gateway_app import create_app
    workdir = tempfile.mkdtemp(prefix="gw-profile-")
    database = f"sqlite:///{workdir}/profile.db"
    policy = unlimited_policy(workdir)
    seed(database, 3000, 3000)
    key = make_keys(database, workdir)["read"]
    store = PrivateRedis().start() if args.redis else None
    app = create_app({"SQLALCHEMY_DATABASE_URL": database, "REDIS_URL": store.url if store else None,
                      "ACCESS_LOG": False, "GATEWAY_CONFIG": policy})
    client = app.test_client()
    headers = {"X-API-Key": key, "Cache-Control": "no-cache"}
    first = {name: client.get(f"/api/v1/{name}s?limit=1", headers=headers).get_json()["data"][0]["id"]
             for name in ("call", "customer")}
    for path in args.paths:
        path = path.format(**first)
        for _ in range(20):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.status_code, answer.data[:300])
        started = time.process_time()
        for _ in range(args.requests):
            client.get(path, headers=headers)
        per_request = (time.process_time() - started) * 1e6 / args.requests
        profile = cProfile.Profile(time.process_time) if args.cpu else cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            client.get(path, headers=headers)
        profile.disable()
        print(f"\n== {path}: {per_request:.0f} us CPU per request (unprofiled), "
              f"{len(answer.data)} bytes, {args.requests} requests")
        stats = pstats.Stats(profile).strip_dirs()
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        for pattern in args.callers:
            stats.print_callers(pattern)
    if store:
        store.cleanup()


if __name__ == "__main__":
    main()
