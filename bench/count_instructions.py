"""Profile (not a benchmark): the machine instructions a request costs, counted, against another checkout.

    .venv/bin/python bench/count_instructions.py [--baseline DIR] [--requests 100] [--redis] [--cached] [PATH ...]

Each PATH (default: the calls list) is requested ``--requests`` times in-process (Flask's
test client, an API key of the read scope of a small demo company, ``Cache-Control:
no-cache`` unless ``--cached``; in-process stores, or a private Redis with ``--redis``)
under valgrind's callgrind, which counts instructions only while those requests run
(``--instr-atstart=no``, switched on by ``callgrind_control`` once the process has
seeded its database and warmed up). With ``--baseline DIR`` the same runs are made in
that checkout (its own ``bench/`` seeds the data), two processes at a time.

Instruction counts are the same run after run (PYTHONHASHSEED is fixed) whatever else the
machine does: they tell apart changes of 1% that the wrk benches and CPU timings cannot
see on a shared machine whose steal time swings a request's CPU by a quarter. They are a
count, not a time (a cache miss weighs as much as an add), of the Python process alone
(not the kernel, not Redis), and include the test client's share (about a fifth): read
a difference as a share of the count, not of a worker's CPU. Needs valgrind (Debian
package ``valgrind``).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def serve_requests(root, path, requests, flag, redis, cached):
    """The child: set up in ``root``'s checkout, say so (``flag``.ready), wait to be
    counted (``flag``.go), then make the requests."""
    sys.path.insert(0, root)
    os.chdir(root)
    from bench.bench_endpoints import make_keys
    from bench.bench_services import seed, unlimited_policy
    from gateway_app import create_app
    from tests.support.servers import PrivateRedis

    workdir = tempfile.mkdtemp(prefix="gw-count-instructions-")
    database = f"sqlite:///{workdir}/bench.db"
    policy = unlimited_policy(workdir)
    seed(database, 200, 200)
    key = make_keys(database, workdir)["read"]
    store = PrivateRedis().start() if redis else None
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URL": database, "REDIS_URL": store.url if store else None,
                          "ACCESS_LOG": False, "GATEWAY_CONFIG": policy})
        client = app.test_client()
        headers = {"X-API-Key": key} if cached else {"X-API-Key": key, "Cache-Control": "no-cache"}
        for _ in range(30):   # every per-process memo and the principal cache warm
            answer = client.get(path, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: {answer.status_code} {answer.data[:300]!r}")
        open(flag + ".ready", "w").close()
        while not os.path.exists(flag + ".go"):
            time.sleep(0.05)
        for _ in range(requests):
            client.get(path, headers=headers)
    finally:
        if store:
            store.cleanup()


def instructions(root, path, args, workdir, name):
    """Instructions per request of ``path`` served by the checkout at ``root``."""
    flag = os.path.join(workdir, name)
    out = flag + ".callgrind"
    child = [os.path.join(ROOT, ".venv", "bin", "python"), os.path.abspath(__file__), "--child", root,
             "--requests", str(args.requests), "--flag", flag, path] + \
        (["--redis"] if args.redis else []) + (["--cached"] if args.cached else [])
    process = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                f"--callgrind-out-file={out}", *child],
                               cwd=root, env=dict(os.environ, PYTHONHASHSEED="0"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not os.path.exists(flag + ".ready"):
        if process.poll() is not None:
            raise SystemExit(f"{root} {path}: the child ended early:\n{process.stdout.read()[-3000:]}")
        time.sleep(0.2)
    subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
    open(flag + ".go", "w").close()
    output = process.communicate()[0]
    with open(out, encoding="utf-8") as handle:
        found = TOTALS.search(handle.read())
    if process.returncode or found is None:
        raise SystemExit(f"{root} {path}: callgrind failed:\n{output[-3000:]}")
    return int(found.group(1)) / args.requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["/api/v1/calls?limit=25"])
    parser.add_argument("--baseline", metavar="DIR", help="another checkout of the project")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--redis", action="store_true", help="a private Redis, as in production")
    parser.add_argument("--cached", action="store_true", help="no Cache-Control: no-cache (L1 hits)")
    parser.add_argument("--child", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--flag", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_requests(args.child, args.paths[0], args.requests, args.flag, args.redis, args.cached)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    roots = {"this": ROOT}
    if args.baseline:
        roots["baseline"] = os.path.abspath(args.baseline)
    workdir = tempfile.mkdtemp(prefix="gw-count-instructions-")
    runs = [(side, root, path) for path in args.paths for side, root in roots.items()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda run: instructions(run[1], run[2], args, workdir,
                                                        f"{run[0]}-{runs.index(run)}"), runs))
    found = dict(zip(((side, path) for side, _root, path in runs), counts))
    print(f"instructions per request ({args.requests} requests, {'Redis' if args.redis else 'in-process stores'}, "
          f"{'cached' if args.cached else 'uncached'}):")
    for path in args.paths:
        line = f"  {path:48s} this {found['this', path] / 1e6:8.3f} M"
        if args.baseline:
            baseline = found["baseline", path]
            line += f"   baseline {baseline / 1e6:8.3f} M   this / baseline {found['this', path] / baseline:.4f}"
        print(line)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
