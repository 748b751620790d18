"""Benchmark: an authenticated GET through the full gateway pipeline (all rate-limit layers
in one Redis script) vs a bare Flask view returning the same JSON, on the same gunicorn
(gevent workers) in one run; plus Redis round trips per request from INFO commandstats.

    .venv/bin/python bench/bench_rate_limit.py [--requests 3000] [--threads 8] [--workers 2]

Loopback only; bounded by --requests and --max-seconds per phase. Not a test.
"""
import argparse
import os
import sys
import tempfile
import uuid

import sqlalchemy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.ratelimit_harness import (bench_server, PrivateRedis, command_calls, redis, round_trips,
                                     run_load)  # noqa: E402
from gateway_app.migrate import upgrade  # noqa: E402

PASSWORD = "correct horse battery staple"
# the seed's numbers are kept: each principal may make 500 requests an hour (user layer),
# so the load is spread over enough unlimited-tier tenants to stay on the allowed path
REQUESTS_PER_TENANT = 450
# commands gateway_app/ratelimit/acquire_all.lua runs inside Redis: commandstats counts
# them, but they cost no round trip
SCRIPT_INNER_COMMANDS = {"pttl", "get", "set", "rename", "exists", "incrby"}


def make_tenants(server, database, count):
    tokens = []
    for n in range(count):
        forwarded = {"X-Forwarded-For": f"192.0.2.{n % 250 + 1}"}
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        signup = server_post(server, "/api/v1/auth/signup", forwarded, {
            "company_name": f"Bench {n}", "name": "Bench", "email": email, "password": PASSWORD})
        tokens.append((signup["company"]["id"], email))
    engine = sqlalchemy.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE companies SET tier = 'unlimited'"))
    engine.dispose()
    return [server_post(server, "/api/v1/auth/token", {"X-Forwarded-For": f"192.0.2.{n % 250 + 1}"},
                        {"email": email, "password": PASSWORD})["access_token"]
            for n, (_company, email) in enumerate(tokens)]


def server_post(server, path, headers, body):
    import requests
    response = requests.post(server.url + path, json=body, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def phase(name, server, redis_client, path, args, headers_for):
    calls_before = command_calls(redis_client)
    done, seconds, statuses = run_load(server.url + path, args.requests, args.threads,
                                       args.max_seconds, headers_for)
    trips, breakdown = round_trips(calls_before, command_calls(redis_client), SCRIPT_INNER_COMMANDS)
    print(f"{name:<28} {done:>6} req  {done / seconds:>8.1f} req/s  "
          f"redis round trips/req {trips / max(done, 1):.2f}  statuses {statuses}")
    if breakdown:
        print(f"{'':<28} commandstats delta per request: "
              + ", ".join(f"{k} {v / max(done, 1):.2f}" for k, v in sorted(breakdown.items())))
    return done / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="gw-bench-")
    database = f"sqlite:///{workdir}/bench.db"
    upgrade(database)
    redis_server = PrivateRedis().start()
    server = bench_server({"DATABASE_URL": database, "REDIS_URL": redis_server.url,
                          "TRUSTED_PROXY_HOPS": "1",
                          "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}, args.workers).start()
    try:
        client = redis.Redis.from_url(redis_server.url)
        tokens = make_tenants(server, database, -(-args.requests // REQUESTS_PER_TENANT) + 1)

        def authenticated(n):
            # a fresh address per request keeps the 50/minute ip burst out of the measurement
            return {"Authorization": f"Bearer {tokens[n % len(tokens)]}",
                    "X-Forwarded-For": f"10.{n // 62500 % 256}.{n // 250 % 250}.{n % 250 + 1}"}

        print(f"gunicorn {args.workers} gevent workers, {args.threads} client threads, "
              f"{args.requests} requests per phase, {len(tokens)} unlimited-tier tenants")
        bare = phase("bare Flask view", server, client, "/bare/bench/bare", args, lambda n: {})
        piped = phase("gateway pipeline (5 layers)", server, client, "/bench/limited", args, authenticated)
        print(f"pipeline / bare throughput: {piped / bare:.2f}")
    finally:
        server.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
