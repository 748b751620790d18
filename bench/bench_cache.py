"""Benchmark of the caching stage (not a test): throughput of a cached GET on an L1 hit
and an L2 hit, against the same handler uncached and a bare Flask view answering the
same JSON, all on the same gunicorn/gevent setup (1 worker each), in one run.

    .venv/bin/python bench/bench_cache.py [--seconds 3] [--rounds 3] [--connections 16]

With ``--baseline DIR`` (another checkout of the project, e.g. from ``git worktree add`` or
``git archive``) the gateway is also served from DIR, on the same database and Redis, and
in every round each measured gateway route is loaded on both gateways at the same moment,
their workers sharing one core: the ratio of their CPU per request is a change's cost,
taken under the same load (one after the other, rounds on a busy 2-core machine swung by
+-15%; side by side, by +-2%).

Also measures a view that builds the page from the database (25 calls), cached and not,
the L1 hit and the uncached handler once more through the rate-limiting stage (the full
pipeline; the policy is conf/gateway.yaml with the limits raised, as in
bench/bench_services.py, so the load is never refused), and counts the Redis commands an
L1 hit costs with and without rate limiting (INFO commandstats).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from bench.bench_services import unlimited_policy  # noqa: E402
from bench.cache_harness import hammer, seed_calls  # noqa: E402
from gateway_app.migrate import upgrade  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402

PASSWORD = "correct horse battery staple"


class GunicornIn(Gunicorn):
    """Gunicorn serving the checkout at ``root`` (gunicorn puts its directory first on
    sys.path, ahead of the editable install's finder)."""

    def __init__(self, root, env, **kwargs):
        super().__init__(env, **kwargs)
        self.root = root

    def start(self, timeout=30):
        served, servers.ROOT = servers.ROOT, self.root
        try:
            return super().start(timeout)
        finally:
            servers.ROOT = served


def sign_up(base_url, database):
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(base_url + "/api/v1/auth/signup", json={
        "company_name": "Bench", "name": "Bench", "email": email, "password": PASSWORD},
        timeout=10)
    signup.raise_for_status()
    seed_calls(database, signup.json()["company"]["id"])
    token = requests.post(base_url + "/api/v1/auth/token",
                          json={"email": email, "password": PASSWORD}, timeout=10)
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def check(url, headers, expected_cache):
    response = requests.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    got = response.headers.get("X-Cache")
    if got != expected_cache:
        raise SystemExit(f"{url}: expected X-Cache {expected_cache}, got {got}")


def worker_pid(server):
    """The one gevent worker of a gunicorn server (a child of its master)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == server.process.pid:
                        return int(entry)
            except (OSError, IndexError):
                continue
    raise SystemExit("no gunicorn worker found")


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server, path, headers, seconds, connections):
    """(req/s, worker CPU microseconds per request) over one load run."""
    pid = worker_pid(server)
    cpu_before = cpu_seconds(pid)
    rps, statuses = hammer(server.port, path, headers, seconds, connections)
    if set(statuses) != {"200"}:
        raise SystemExit(f"{path}: unexpected statuses {statuses}")
    return rps, (cpu_seconds(pid) - cpu_before) * 1e6 / sum(statuses.values())


def measure_side_by_side(servers, path, headers, seconds, connections):
    """Worker CPU microseconds per request of each server, all loaded at the same moment."""
    pids = [worker_pid(server) for server in servers]
    before = [cpu_seconds(pid) for pid in pids]
    loads = [gevent.spawn(hammer, server.port, path, headers, seconds, connections)
             for server in servers]
    gevent.joinall(loads, raise_error=True)
    costs = []
    for pid, cpu_before, load in zip(pids, before, loads):
        _rps, statuses = load.value
        if set(statuses) != {"200"}:
            raise SystemExit(f"{path}: unexpected statuses {statuses}")
        costs.append((cpu_seconds(pid) - cpu_before) * 1e6 / sum(statuses.values()))
    return costs


def pin_processes(servers, store):
    """The measured workers on the last core, the load generator and Redis on the others:
    on a small shared machine (2 cores here) this keeps the worker's CPU per request from
    swinging with where the scheduler happens to put the load generator."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return False
    others = set(cores[:-1])
    os.sched_setaffinity(0, others)
    os.sched_setaffinity(store.process.pid, others)
    for server in servers:
        os.sched_setaffinity(worker_pid(server), {cores[-1]})
    return True


def redis_calls(client, command):
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def redis_commands_per_request(client, server, path, headers, connections):
    before = {c: redis_calls(client, c) for c in COUNTED_COMMANDS}
    _rps, statuses = hammer(server.port, path, headers, 1.0, connections)
    served = sum(statuses.values())
    return {c: (redis_calls(client, c) - before[c]) / served for c in before}


# evalsha is the rate limiter's one script call; the commands it runs inside Redis
# (get, set, ...) are counted too but cost no round trip
COUNTED_COMMANDS = ("mget", "get", "set", "setex", "evalsha")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-pin", action="store_true",
                        help="leave processes wherever the scheduler puts them")
    parser.add_argument("--paths", default="",
                        help="comma-separated paths to measure (e.g. /bench/l1,/bench/limited/l1); "
                             "the bare view is always measured, as every ratio's base")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout of the project: its gateway is loaded side by "
                             "side with this one's, on each measured gateway route")
    args = parser.parse_args()

    store = PrivateRedis().start()
    workdir = tempfile.mkdtemp(prefix="gw-bench-cache-")
    database = f"sqlite:///{workdir}/bench.db"
    upgrade(database)
    env = {"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
           "GATEWAY_CONFIG": unlimited_policy(workdir),
           "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
    gateway = Gunicorn(env, workers=1, app_uri="bench.cache_harness:gateway_app()").start()
    bare = Gunicorn(env, workers=1, app_uri="bench.cache_harness:bare_app()").start()
    baseline = None
    if args.baseline:
        baseline = GunicornIn(os.path.abspath(args.baseline),
                              {**env, "GATEWAY_CONFIG": unlimited_policy(
                                  tempfile.mkdtemp(dir=workdir), os.path.abspath(args.baseline))},
                              workers=1, app_uri="bench.cache_harness:gateway_app()").start()
    try:
        pinned = not args.no_pin and pin_processes(
            (gateway, bare) + ((baseline,) if baseline else ()), store)
        auth = sign_up(gateway.url, database)
        targets = {
            "bare Flask view": (bare, "/bench/bare", {}, None),
            "gateway, L1 hit": (gateway, "/bench/l1", auth, "HIT-L1"),
            "gateway, L2 hit": (gateway, "/bench/l2", auth, "HIT-L2"),
            "gateway, uncached handler": (gateway, "/bench/uncached", auth, None),
            "gateway public route, L1 hit": (gateway, "/bench/public/l1", {}, "HIT-L1"),
            "gateway public route, uncached": (gateway, "/bench/public/uncached", {}, None),
            "gateway, L1 hit of a DB-backed view": (gateway, "/bench/db/l1", auth, "HIT-L1"),
            "gateway, DB-backed view uncached": (gateway, "/bench/db/uncached", auth, None),
            "rate limited, L1 hit": (gateway, "/bench/limited/l1", auth, "HIT-L1"),
            "rate limited, uncached handler": (gateway, "/bench/limited/uncached", auth, None),
        }
        chosen = {path for path in args.paths.split(",") if path}
        if chosen:
            unknown = chosen - {path for _server, path, _headers, _expected in targets.values()}
            if unknown:
                raise SystemExit(f"unknown paths: {', '.join(sorted(unknown))}")
            targets = {name: target for name, target in targets.items()
                       if target[0] is bare or target[1] in chosen}
        compared = {name: target for name, target in targets.items()
                    if baseline is not None and target[0] is gateway}
        for name, (server, path, headers, expected) in targets.items():
            for served in (server, baseline) if name in compared else (server,):
                requests.get(served.url + path, headers=headers, timeout=10)  # fill the cache
                check(served.url + path, headers, expected)

        client = redis.Redis.from_url(store.url)
        per_hit = {path: redis_commands_per_request(client, gateway, path, auth, args.connections)
                   for path in ("/bench/l1", "/bench/limited/l1")
                   if not chosen or path in chosen}

        results = {name: [] for name in targets}
        cpu = {name: [] for name in targets}
        paired = {name: [] for name in compared}
        for _round in range(args.rounds):     # interleaved, so drift in machine load is shared
            for name, (server, path, headers, _expected) in targets.items():
                hammer(server.port, path, headers, 0.3, args.connections)   # warm after a switch
                rps, cpu_per_request = measure(server, path, headers, args.seconds, args.connections)
                results[name].append(rps)
                cpu[name].append(cpu_per_request)
            for name, (server, path, headers, _expected) in compared.items():
                for served in (server, baseline):
                    hammer(served.port, path, headers, 0.3, args.connections)
                ours, theirs = measure_side_by_side((server, baseline), path, headers,
                                                    args.seconds, args.connections)
                paired[name].append(theirs / ours)
        for name, (server, path, headers, expected) in targets.items():
            for served in (server, baseline) if name in compared else (server,):
                check(served.url + path, headers, expected)   # still the tier we meant to measure
    finally:
        gateway.stop()
        bare.stop()
        if baseline is not None:
            baseline.stop()
        store.cleanup()

    bare_rps = statistics.median(results["bare Flask view"])
    bare_cpu = statistics.median(cpu["bare Flask view"])
    bare_least = min(cpu["bare Flask view"])
    print(f"{args.rounds} rounds x {args.seconds:.0f} s, {args.connections} keep-alive connections, "
          f"1 gevent worker per server"
          f"{', pinned to a core of its own' if pinned else ''}; medians of req/s and of the "
          f"worker's CPU per request (the worker is saturated, so CPU per request is the cost "
          f"that sets throughput), and the least CPU per request of any round (noise on a "
          f"shared machine only ever adds):")
    for name, samples in results.items():
        median = statistics.median(samples)
        cost = statistics.median(cpu[name])
        least = min(cpu[name])
        print(f"  {name:36s} {median:6.0f} req/s {median / bare_rps:5.2f}x bare | "
              f"{cost:5.0f} us CPU/req {bare_cpu / cost:5.2f}x | "
              f"least {least:4.0f} us {bare_least / least:5.2f}x"
              f"   (req/s rounds: {', '.join(f'{s:.0f}' for s in samples)})")
    for name, ratios in paired.items():
        print(f"{name}: the baseline's worker CPU per request / this one's, loaded side by side: "
              f"median {statistics.median(ratios):.3f} "
              f"(rounds: {', '.join(f'{ratio:.3f}' for ratio in ratios)})")
    for path, counts in per_hit.items():
        print(f"Redis commands per L1 hit of {path} ({args.connections} connections): "
              + ", ".join(f"{c} {v:.2f}" for c, v in counts.items()))


if __name__ == "__main__":
    main()
