"""Benchmark (not a test): throughput of 1, 2 and 4 gateway instances (separate gunicorn
masters, as separate dynos) on one Redis server and on a local 3-master Redis Cluster,
and the Redis CPU each request costs.

    .venv/bin/python bench/bench_scale_out.py [--seconds 5] [--connections 8] [--workers 1]
                                              [--instances 1,2,4] [--topologies single,cluster]

Every instance serves `GET /api/v1/calls?limit=25` (the full pipeline, answered from L1:
one round of Redis calls per request, the principal's versions and the cache's tokens
read, the five rate-limit layers taken), driven by its own `wrk` at the same time as the
others, each request with the API key of one of the demo companies in turn (so the
Cluster's load spreads by company as in production). Redis CPU is the user+system time
of the topology's redis-server processes over the run, less what they spend idle (a
Cluster's cron and bus), divided by the requests answered: the masters' and (on the
Cluster, a replica per master) the replicas' apart. Loopback only; bounded by --seconds per configuration.
Needs ``wrk``. On a machine with fewer cores than instances + Redis the figures show
where it saturates, not how far the gateway scales.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from bench.bench_cache import cpu_seconds  # noqa: E402
from bench.bench_endpoint_hit import WRK_ERRORS, WRK_RATE  # noqa: E402
from bench.bench_services import unlimited_policy  # noqa: E402
from tests.support.redis_topologies import LocalCluster  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402

PATH = "/api/v1/calls?limit=25"
TIERS = ("free", "pro", "enterprise", "unlimited")


def demo_company_keys(database, workdir):
    """The demo data, and a read API key of each demo company."""
    from gateway_app import create_app
    from gateway_app.demo import demo_email, demo_password, seed_demo
    from gateway_app.migrate import upgrade
    upgrade(database)
    app = create_app({"SQLALCHEMY_DATABASE_URL": database, "REDIS_URL": None,
                      "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml")})
    with app.app_context():
        seed_demo(calls_per_company=500, largest_company_calls=500)
    client = app.test_client()
    keys = []
    for tier in TIERS:
        token = client.post("/api/v1/auth/token", json={"email": demo_email(tier),
                                                         "password": demo_password(tier)})
        bearer = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
        keys.append(client.post("/api/v1/settings/api-keys", headers=bearer,
                                json={"name": "bench", "scopes": ["read"]}).get_json()["key"])
    app.extensions["gateway_engine"].dispose()
    return keys


def rotating_keys_script(workdir, keys):
    """A wrk script sending each request with the next company's API key."""
    path = os.path.join(workdir, "rotating_keys.lua")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("local keys = {" + ", ".join(f'"{key}"' for key in keys) + "}\n"
                     "local n = 0\n"
                     "request = function()\n"
                     "  n = n + 1\n"
                     "  wrk.headers['X-API-Key'] = keys[n % #keys + 1]\n"
                     "  return wrk.format(nil)\n"
                     "end\n")
    return path


def wrk(url, seconds, connections, script):
    output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
                            capture_output=True, text=True, check=True).stdout
    errors = WRK_ERRORS.search(output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} answers were not 2xx/3xx:\n{output}")
    return float(WRK_RATE.search(output).group(1))


def redis_pids(topology):
    """(masters' pids, replicas' pids) of the topology's redis-server processes."""
    if isinstance(topology, LocalCluster):
        # spawned in the order of topology.ports
        roles = [topology.node(port).execute_command("ROLE")[0] for port in topology.ports]
        pids = [process.pid for process in topology.processes.processes]
        return ([pid for pid, role in zip(pids, roles) if role == b"master"],
                [pid for pid, role in zip(pids, roles) if role != b"master"])
    return [topology.process.pid], []


def cpu_of(pids):
    return sum(cpu_seconds(pid) for pid in pids)


def idle_cpu(topology, seconds):
    """Redis CPU seconds per second with no load (a Cluster's cron and bus, replication pings)."""
    masters, replicas = redis_pids(topology)
    before = cpu_of(masters), cpu_of(replicas)
    time.sleep(seconds)
    return (cpu_of(masters) - before[0]) / seconds, (cpu_of(replicas) - before[1]) / seconds


def measure(servers, topology, seconds, connections, script, idle):
    """(total req/s, Redis CPU microseconds per request: masters, replicas), with every
    instance loaded at once and the idle CPU (``idle``, per second) taken off."""
    for server in servers:   # warm: L1 filled, connections made, in every worker
        wrk(server.url + PATH, 1, connections, script)
    masters, replicas = redis_pids(topology)
    before = cpu_of(masters), cpu_of(replicas)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        rates = list(pool.map(lambda server: wrk(server.url + PATH, seconds, connections, script), servers))
    elapsed = time.monotonic() - started
    total = sum(rates)
    per_request = [max(0.0, (cpu_of(pids) - was - rate * elapsed) * 1e6 / (total * seconds))
                   for pids, was, rate in ((masters, before[0], idle[0]), (replicas, before[1], idle[1]))]
    return total, *per_request


def start_topology(name):
    return PrivateRedis().start() if name == "single" else LocalCluster().start()


def topology_url(topology):
    return topology.url


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8, help="per instance")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per instance")
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--topologies", default="single,cluster")
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    workdir = tempfile.mkdtemp(prefix="gw-bench-scale-")
    unlimited_policy(workdir)
    database = f"sqlite:///{workdir}/bench.db"
    keys = demo_company_keys(database, workdir)
    script = rotating_keys_script(workdir, keys)
    print(f"GET {PATH}, API keys of {len(keys)} companies in turn; per instance: {args.workers} "
          f"gevent worker(s), wrk -t1 -c{args.connections} -d{args.seconds}s; cores: {os.cpu_count()}")
    print(f"{'redis':8} {'instances':>9} {'req/s':>9} {'per instance':>13} {'masters us/req':>15} "
          f"{'replicas us/req':>16}")
    for name in args.topologies.split(","):
        topology = start_topology(name)
        servers = []
        try:
            env = {"DATABASE_URL": database, "REDIS_URL": topology_url(topology),
                   "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml"), "GATEWAY_ACCESS_LOG": "0",
                   "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
            idle = idle_cpu(topology, args.seconds)
            for count in counts:
                while len(servers) < count:
                    servers.append(Gunicorn(env, workers=args.workers).start())
                probe = requests.get(servers[0].url + PATH, headers={"X-API-Key": keys[0]}, timeout=10)
                probe.raise_for_status()
                total, masters_us, replicas_us = measure(servers[:count], topology, args.seconds,
                                                         args.connections, script, idle)
                print(f"{name:8} {count:>9} {total:>9.0f} {total / count:>13.0f} {masters_us:>15.1f} "
                      f"{replicas_us:>16.1f}")
        finally:
            for server in servers:
                server.stop()
            topology.stop() if isinstance(topology, LocalCluster) else topology.cleanup()


if __name__ == "__main__":
    main()
