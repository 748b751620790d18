"""Benchmark (not a test): a real endpoint's cached answer end to end, driven by wrk.

    .venv/bin/python bench/bench_endpoint_hit.py [--seconds 5] [--rounds 5] [--connections 16]

``GET /api/v1/calls?limit=25`` with an API key of the demo pro company: the full
pipeline (authentication from the principal cache, authorization, the five rate-limit
layers, an L1 hit), against a bare Flask view answering the same body with the same
Content-Type, each on the same gunicorn/gevent setup (1 worker), measured in one run,
rounds interleaved. The policy is conf/gateway.yaml with the limits raised (as in
bench_services.py), so the load is never refused but every layer is still taken.
Needs ``wrk`` (Debian package) on the PATH. With ``--baseline DIR`` (another checkout,
e.g. from ``git worktree add``) that checkout's gateway answers the same request on the
same database and Redis, measured in the same rounds: a before/after in one run. Each
round then also loads both gateways at the same moment, their workers sharing one core,
and reports the ratio of their CPU per request: one after the other, a busy 2-core
machine's drift between runs swamps a change of a few per cent; side by side both see it.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from bench.bench_cache import GunicornIn, cpu_seconds, pin_processes, worker_pid  # noqa: E402
from bench.bench_services import unlimited_policy  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402

PATH = "/api/v1/calls?limit=25"
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_REQUESTS = re.compile(r"(\d+) requests in")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def seed_pro_company_key(database, workdir):
    """The demo data, and an API key of the demo pro company (what a portal integration uses)."""
    from gateway_app import create_app
    from gateway_app.demo import demo_email, demo_password, seed_demo
    from gateway_app.migrate import upgrade
    upgrade(database)
    app = create_app({"SQLALCHEMY_DATABASE_URL": database, "REDIS_URL": None,
                      "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml")})
    with app.app_context():
        seed_demo(calls_per_company=3000, largest_company_calls=3000)
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"email": demo_email("pro"),
                                                     "password": demo_password("pro")})
    bearer = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    key = client.post("/api/v1/settings/api-keys", headers=bearer,
                      json={"name": "bench", "scopes": ["read"]}).get_json()["key"]
    app.extensions["gateway_engine"].dispose()
    return key


def wrk_command(url, headers, seconds, connections, script=None):
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:   # a new file per run: its nonce keeps the bodies distinct across runs
        command += ["-s", script()]
    return command + [url]


def checked_output(url, output):
    errors = WRK_ERRORS.search(output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} answers were not 2xx/3xx:\n{output}")
    return output


def wrk(url, headers, seconds, connections, script=None):
    """(req/s, p50 ms, p99 ms) of one wrk run with one thread (``script``: a function
    making a Lua request script's file, for requests with bodies)."""
    command = wrk_command(url, headers, seconds, connections, script)
    output = checked_output(url, subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    latency = {int(p): float(v) * UNIT_MS[u] for p, v, u in WRK_LATENCY.findall(output)}
    return float(WRK_RATE.search(output).group(1)), latency[50], latency[99]


def measure(server, path, headers, seconds, connections):
    """(req/s, p50 ms, p99 ms, worker CPU microseconds per request)."""
    pid = worker_pid(server)
    before = cpu_seconds(pid)
    rps, p50, p99 = wrk(server.url + path, headers, seconds, connections)
    return rps, p50, p99, (cpu_seconds(pid) - before) * 1e6 / (rps * seconds)


def measure_side_by_side(servers, path, headers, seconds, connections):
    """Worker CPU microseconds per request of each server, all loaded at the same moment."""
    pids = [worker_pid(server) for server in servers]
    before = [cpu_seconds(pid) for pid in pids]
    loads = [subprocess.Popen(wrk_command(server.url + path, headers, seconds, connections),
                              stdout=subprocess.PIPE, text=True) for server in servers]
    outputs = [checked_output(server.url + path, load.communicate()[0])
               for server, load in zip(servers, loads)]
    return [(cpu_seconds(pid) - cpu_before) * 1e6 / int(WRK_REQUESTS.search(output).group(1))
            for pid, cpu_before, output in zip(pids, before, outputs)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout whose gateway is measured in the same run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    store = PrivateRedis().start()
    workdir = tempfile.mkdtemp(prefix="gw-bench-endpoint-")
    database = f"sqlite:///{workdir}/bench.db"
    unlimited_policy(workdir)
    key = seed_pro_company_key(database, workdir)
    env = {"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
           "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml"),
           "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
    gateway = Gunicorn(env, workers=1).start()
    headers = {"X-API-Key": key}
    first = requests.get(gateway.url + PATH, headers=headers, timeout=10)
    first.raise_for_status()
    body_path = os.path.join(workdir, "body")
    with open(body_path, "wb") as handle:
        handle.write(first.content)
    bare = Gunicorn(dict(env, BENCH_BODY=body_path, BENCH_CONTENT_TYPE=first.headers["Content-Type"]),
                    workers=1, app_uri="bench.bare_body:app").start()
    targets = {"bare Flask view, same body": (bare, "/bare", {}),
               "gateway, calls L1 hit (API key)": (gateway, PATH, headers)}
    if args.baseline:
        root = os.path.abspath(args.baseline)
        baseline_env = dict(env, GATEWAY_CONFIG=unlimited_policy(tempfile.mkdtemp(dir=workdir), root))
        targets["baseline gateway, same request"] = (GunicornIn(root, baseline_env, workers=1).start(),
                                                     PATH, headers)
    servers = [server for server, _path, _headers in targets.values()]
    try:
        pinned = pin_processes(servers, store)
        for server, path, target_headers in targets.values():
            if server is not bare:
                requests.get(server.url + path, headers=target_headers, timeout=10)
                if requests.get(server.url + path, headers=target_headers,
                                timeout=10).headers.get("X-Cache") != "HIT-L1":
                    raise SystemExit(f"{server.url}: the calls page is not served from L1")
        results = {name: [] for name in targets}
        paired = []   # baseline's CPU per request / this gateway's, loaded side by side
        for _round in range(args.rounds):   # interleaved, so drift in machine load is shared
            for name, (server, path, target_headers) in targets.items():
                wrk(server.url + path, target_headers, 1, args.connections)   # warm after a switch
                results[name].append(measure(server, path, target_headers, args.seconds, args.connections))
            if args.baseline:
                this, baseline = measure_side_by_side(servers[1:], PATH, headers, args.seconds,
                                                      args.connections)
                paired.append(baseline / this)
    finally:
        for server in servers:
            server.stop()
        store.cleanup()

    print(f"GET {PATH}, {len(first.content)} bytes; wrk -t1 -c{args.connections} -d{args.seconds}s, "
          f"{args.rounds} rounds; 1 gevent worker per server"
          f"{', pinned to a core of its own' if pinned else ''}; medians:")
    bare_rps = statistics.median(r[0] for r in results["bare Flask view, same body"])
    bare_cpu = statistics.median(r[3] for r in results["bare Flask view, same body"])
    for name, rounds in results.items():
        rps = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[3] for r in rounds)
        print(f"  {name:34s} {rps:7.0f} req/s {rps / bare_rps:5.2f}x | "
              f"p50 {statistics.median(r[1] for r in rounds):6.2f} ms p99 "
              f"{statistics.median(r[2] for r in rounds):6.2f} ms | "
              f"{cpu:5.0f} us CPU/req {bare_cpu / cpu:5.2f}x"
              f"   (req/s rounds: {', '.join(f'{r[0]:.0f}' for r in rounds)})")
    if paired:
        print(f"the baseline's worker CPU per request / this gateway's, loaded side by side: median "
              f"{statistics.median(paired):.3f} (rounds: {', '.join(f'{ratio:.3f}' for ratio in paired)})")


if __name__ == "__main__":
    main()
