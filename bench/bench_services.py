"""Latency and SQL statements per request of the list and analytics endpoints, uncached.

    python bench/bench_services.py                      # temp SQLite, 100,000 calls
    python bench/bench_services.py --database-url mysql+pymysql://root@127.0.0.1/bench
    python bench/bench_services.py --requests 50 --largest 20000 --redis-url redis://127.0.0.1:6379/5

Seeds the demo companies (the unlimited-tier one with --largest calls), starts real
gunicorn serving bench/count_queries_app.py (the gateway plus an SQL statement
counter), logs in as the unlimited-tier owner and sends each endpoint N requests with
`Cache-Control: no-cache`, so every one reaches the database. The policy is a copy of
conf/gateway.yaml with the rate limits raised: the bench measures the services, not
the limiter. Endpoints that answer 404 (not merged yet) are reported as missing.
"""
import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time

import requests
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gateway_app.demo import demo_email, demo_password  # noqa: E402
from tests.support.servers import Gunicorn  # noqa: E402


def endpoints():
    today = dt.date.today()
    week_ago, in_four_weeks = today - dt.timedelta(days=7), today + dt.timedelta(days=28)
    return [
        ("baseline: /ready", "/ready"),   # the pipeline plus one database round trip
        ("calls list", "/api/v1/calls?limit=50"),
        ("calls list, filtered", "/api/v1/calls?limit=50&status=answered&direction=inbound"
                                 f"&from={today - dt.timedelta(days=30)}&to={today}"),
        ("customers search", "/api/v1/customers?q=smith&limit=50"),
        ("appointments calendar", f"/api/v1/appointments?from={week_ago}&to={in_four_weeks}"),
        ("dashboard overview", "/api/v1/dashboard/overview"),
        ("dashboard metrics", "/api/v1/dashboard/metrics"),
        ("dashboard activity", "/api/v1/dashboard/activity"),
        ("analytics reports", "/api/v1/analytics/reports"),
        ("analytics kpis", "/api/v1/analytics/kpis"),
        ("analytics trends", "/api/v1/analytics/trends"),
    ]


def unlimited_policy(directory, root=ROOT):
    """conf/gateway.yaml (of the checkout at ``root``) with every user-facing limit raised far
    beyond the bench's traffic."""
    with open(os.path.join(root, "conf", "gateway.yaml"), encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)
    layers = policy["rate_limiting"]["layers"]
    for layer in ("ip", "user", "company"):   # same windows, so the policy names still fit
        layers[layer]["limits"] = ["10000000/" + limit.split("/", 1)[1] for limit in layers[layer]["limits"]]
    layers["endpoint"]["services"] = {name: "10000000/hour" for name in layers["endpoint"]["services"]}
    path = os.path.join(directory, "gateway.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(policy, handle)
    return path


def seed(database_url, calls, largest):
    from gateway_app import create_app
    from gateway_app.demo import seed_demo
    from gateway_app.migrate import upgrade
    upgrade(database_url)
    app = create_app({"SQLALCHEMY_DATABASE_URL": database_url, "REDIS_URL": None})
    started = time.perf_counter()
    with app.app_context():
        seed_demo(calls_per_company=calls, largest_company_calls=largest)
    app.extensions["gateway_engine"].dispose()
    return time.perf_counter() - started


def measure(session, base, path, count):
    headers = {"Cache-Control": "no-cache"}
    first = session.get(base + path, headers=headers, timeout=60)
    if first.status_code in (404, 405):
        return {"missing": True, "status": first.status_code}
    latencies, queries, statuses, cache = [], [], {}, set()
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(base + path, headers=headers, timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if "X-SQL-Queries" in response.headers:
            queries.append(int(response.headers["X-SQL-Queries"]))
        cache.add(response.headers.get("X-Cache", "-"))
    latencies.sort()
    return {"missing": False, "median": statistics.median(latencies),
            "p95": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
            "queries": f"{min(queries)}-{max(queries)}" if queries and min(queries) != max(queries)
            else (str(queries[0]) if queries else "?"),
            "statuses": ",".join(f"{code}x{n}" for code, n in sorted(statuses.items())),
            "cache": "/".join(sorted(cache)), "bytes": len(response.content)}


def print_table(results, count):
    print(f"\n{'endpoint':<24} {'median ms':>10} {'p95 ms':>9} {'SQL/req':>8} {'bytes':>8}  status      X-Cache")
    for name, path, result in results:
        if result["missing"]:
            print(f"{name:<24} {'missing (answered ' + str(result['status']) + ')':>37}   {path}")
            continue
        print(f"{name:<24} {result['median']:>10.1f} {result['p95']:>9.1f} {result['queries']:>8} "
              f"{result['bytes']:>8}  {result['statuses']:<11} {result['cache']}")
    print(f"({count} requests each, after one warm-up request; Cache-Control: no-cache)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", help="default: none (in-process stores)")
    parser.add_argument("--largest", type=int, default=100000, help="calls of the unlimited-tier company")
    parser.add_argument("--calls", type=int, default=3000, help="calls of each other company")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per endpoint")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-services-") as directory:
        database_url = args.database_url or f"sqlite:///{directory}/bench.db"
        seconds = seed(database_url, args.calls, args.largest)
        print(f"seeded demo data ({args.largest} calls for the largest company) in {seconds:.1f} s")
        env = {"DATABASE_URL": database_url, "GATEWAY_CONFIG": unlimited_policy(directory),
               "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789"}
        if args.redis_url:
            env["REDIS_URL"] = args.redis_url
        server = Gunicorn({**env, "GATEWAY_COUNT_QUERIES": "1", "GATEWAY_ACCESS_LOG": "0"},
                          workers=args.workers, app_uri="bench.count_queries_app:app").start(timeout=60)
        base = server.url
        try:
                session = requests.Session()
                login = session.post(base + "/api/v1/auth/token", timeout=30, json={
                    "email": demo_email("unlimited"), "password": demo_password("unlimited")})
                login.raise_for_status()
                session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
                results = [(name, path, measure(session, base, path, args.requests))
                           for name, path in endpoints()]
        finally:
            server.stop()
    print_table(results, args.requests)


if __name__ == "__main__":
    main()
