"""Profile (not a benchmark): where the gateway worker's CPU goes while it proxies.

    .venv/bin/python bench/profile_proxy.py [--seconds 30] [--top 40] [--connections 16]
        [--target proxy|calls-hit|calls-miss]

bench_proxy.py's gateway (1 gevent worker, the analytics service made remote on
bench/proxy_upstream.py, ``GET /api/v1/analytics/kpis`` with an API key and
``Cache-Control: no-cache``; or, with ``--target calls-hit``/``calls-miss``,
bench_endpoint_hit.py's gateway answering ``GET /api/v1/calls?limit=25`` from L1, or
uncached with ``Cache-Control: no-cache``) is loaded with ``wrk`` while a sampling
profiler in the worker records the Python stack every time the worker has used a slice of CPU
(``ITIMER_PROF``: user and system time, so time in a system call counts where the call
was made, and a wait for I/O does not count at all). Unlike cProfile, which cannot follow
greenlet switches and adds a cost to every call, each sample costs the same wherever it
falls. The kernel fires the timer on its scheduler tick (4 ms here), so run long enough
for a few thousand samples. Prints the worker's CPU per request, then the functions with
the most samples of their own and the most samples anywhere on the stack, in percent of
all samples (time spent in C, e.g. a ``send``, counts for the Python function that called
it). Needs ``wrk``.
"""
import argparse
import collections
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from bench.bench_cache import cpu_seconds, worker_pid  # noqa: E402
from bench.bench_endpoint_hit import PATH as CALLS_PATH  # noqa: E402
from bench.bench_endpoint_hit import seed_pro_company_key, wrk  # noqa: E402
from bench.bench_proxy import PATH, api_key_of_new_company, start_proxied_upstream  # noqa: E402
from bench.bench_services import ROOT, unlimited_policy  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402

# conf/gunicorn.conf.py, plus a sampler installed once the worker has its own signal
# handlers (post_worker_init): SIGUSR2 starts it, the next SIGUSR2 writes what it saw
SAMPLED_CONFIG = '''
import os as _os
exec(compile(open({conf!r}).read(), {conf!r}, "exec"))
_served_post_worker_init = post_worker_init


def post_worker_init(worker):
    _served_post_worker_init(worker)
    import collections, pickle, signal
    from gevent import monkey
    real_signal = monkey.get_original("signal", "signal")
    seen = {{"on": False, "own": collections.Counter(), "anywhere": collections.Counter(), "samples": 0}}

    def sample(_signum, frame):
        seen["samples"] += 1
        seen["own"][_key(frame.f_code)] += 1
        codes = set()
        while frame is not None:
            codes.add(_key(frame.f_code))
            frame = frame.f_back
        for code in codes:
            seen["anywhere"][code] += 1

    def toggle(*_):
        if not seen["on"]:
            seen["on"] = True
            real_signal(signal.SIGPROF, sample)
            signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
            return
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        seen["on"] = False
        with open({out!r}, "wb") as handle:
            pickle.dump({{k: seen[k] for k in ("own", "anywhere", "samples")}}, handle)

    signal.signal(signal.SIGUSR2, toggle)


def _key(code):
    return code.co_filename, code.co_firstlineno, code.co_name
'''


def short(key):
    filename, line, name = key
    for marker in ("site-packages/", ROOT + "/", "python3.11/"):
        filename = filename.split(marker, 1)[-1]
    return f"{filename}:{line}({name})"


def start_calls_gateway(workdir, store, started, config, target):
    """bench_endpoint_hit.py's gateway (demo data, the pro company's API key), and the
    headers of its request: from L1, or uncached (``calls-miss``)."""
    database = f"sqlite:///{workdir}/bench.db"
    unlimited_policy(workdir)
    key = seed_pro_company_key(database, workdir)
    gateway = Gunicorn({"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
                        "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml"),
                        "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"},
                       workers=1, config=config).start()
    started.append(gateway)
    headers = {"X-API-Key": key}
    if target == "calls-miss":
        headers["Cache-Control"] = "no-cache"
    return gateway, headers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--target", choices=("proxy", "calls-hit", "calls-miss"), default="proxy")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    store = PrivateRedis().start()
    workdir = tempfile.mkdtemp(prefix="gw-profile-proxy-")
    out = os.path.join(workdir, "samples.pickle")
    config = os.path.join(workdir, "gunicorn.conf.py")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(SAMPLED_CONFIG.format(conf=os.path.join(ROOT, "conf", "gunicorn.conf.py"), out=out))
    started = []
    try:
        if args.target == "proxy":
            path = PATH
            _upstream, gateway = start_proxied_upstream(workdir, store, started, config=config)
            headers = {"X-API-Key": api_key_of_new_company(gateway.url), "Cache-Control": "no-cache"}
        else:
            path = CALLS_PATH
            gateway, headers = start_calls_gateway(workdir, store, started, config, args.target)
        if requests.get(gateway.url + path, headers=headers, timeout=10).status_code != 200:
            raise SystemExit(f"the gateway does not answer {path}")
        wrk(gateway.url + path, headers, 2, args.connections)   # warm
        pid = worker_pid(gateway)
        os.kill(pid, signal.SIGUSR2)
        cpu_before = cpu_seconds(pid)
        rps = wrk(gateway.url + path, headers, args.seconds, args.connections)[0]
        cpu = cpu_seconds(pid) - cpu_before
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        with open(out, "rb") as handle:
            seen = pickle.load(handle)
    finally:
        for server in reversed(started):
            server.stop()
        store.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

    samples = seen["samples"]
    print(f"GET {path} ({args.target}) through the gateway: {rps:.0f} req/s, {cpu * 1e6 / (rps * args.seconds):.0f} us "
          f"worker CPU per request, {samples} samples")
    for title, counts in (("own samples", seen["own"]), ("samples anywhere on the stack", seen["anywhere"])):
        print(f"\nmost {title}:")
        for key, count in collections.Counter(counts).most_common(args.top):
            print(f"  {100 * count / samples:5.1f}%  {short(key)}")


if __name__ == "__main__":
    main()
