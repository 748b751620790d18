"""Profile (not a benchmark): the Python calls a request makes, counted, against another checkout.

    .venv/bin/python bench/count_calls.py --baseline DIR [--path /bench/limited/l1] [--requests 200] [--top 40]

Sends the same warm request ``--requests`` times to bench/cache_harness.py's gateway
(in-process, Flask's test client, a bearer token of a new company, a private Redis),
in this checkout and in DIR (each in a process of its own), counting every Python
function call and every call of a builtin (``sys.setprofile``). Prints the calls per
request of each checkout by module, then the functions whose count differs most.

Counts are exact and the same run after run, so they tell apart changes of 1-3% that
the wrk benches, on this shared machine, cannot see; they are a count, not a time: a
call of ``isinstance`` and one of a view weigh the same. In-process, a request's Redis
round trip is never shared with another request's (one client at a time), so the
round's own calls show in full on each request, where a loaded worker shares them
between the requests of a batch.
"""
from gevent import monkey

monkey.patch_all()   # as in the gunicorn workers: the counts include gevent's locks

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "correct horse battery staple"


def count_in_this_process(root, path, requests):
    """{"file::function": calls per request} of ``path`` served by the checkout at ``root``."""
    sys.path.insert(0, root)
    os.chdir(root)
    from bench.bench_services import unlimited_policy
    from gateway_app.migrate import upgrade
    from tests.support.servers import PrivateRedis

    store = PrivateRedis().start()
    workdir = tempfile.mkdtemp(prefix="gw-count-calls-")
    database = f"sqlite:///{workdir}/bench.db"
    upgrade(database)
    os.environ.update({"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
                       "GATEWAY_CONFIG": unlimited_policy(workdir),
                       "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=workdir),
                       "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"})
    try:
        from bench.cache_harness import gateway_app
        client = gateway_app().test_client()
        headers = bearer_of_new_company(client)
        for _ in range(20):   # the principal, the cache and every per-worker memo warm
            client.get(path, headers=headers)
        counts = collections.Counter()
        sys.setprofile(counter_of(counts, root))
        for _ in range(requests):
            client.get(path, headers=headers)
        sys.setprofile(None)
        return {key: count / requests for key, count in counts.items()}
    finally:
        store.stop()


def bearer_of_new_company(client):
    email = f"count-{uuid.uuid4().hex[:8]}@example.com"
    client.post("/api/v1/auth/signup", json={"company_name": "Count", "name": "Count",
                                              "email": email, "password": PASSWORD})
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.get_json()['access_token']}"}


def counter_of(counts, root):
    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            counts[f"{short_file(code.co_filename, root)}::{code.co_name}"] += 1
        elif event == "c_call":
            counts[f"<builtin>::{getattr(arg, '__qualname__', repr(arg))}"] += 1
    return profile


def short_file(filename, root):
    """A library's file from its package, the project's from the checkout, others whole."""
    library = filename.rpartition("site-packages" + os.sep)[2]
    if library != filename:
        return library
    return filename[len(root) + 1:] if filename.startswith(root + os.sep) else filename


def module_of(key):
    """Where a call is counted in the summary: this project's package and module, a
    library's top-level package, a standard library module, or the builtin's type."""
    where, _, name = key.partition("::")
    if where == "<builtin>":
        return "<builtin> " + name.split(".")[0]
    if os.path.isabs(where):   # the standard library
        return os.path.basename(where)
    parts = where.split(os.sep)
    return os.sep.join(parts[:2]) if parts[0] in ("gateway_app", "blueprints", "bench") else parts[0]


def counted_in(root, args):
    """Run count_in_this_process for ``root`` in a fresh interpreter (its own imports)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--count-only", root,
                        "--path", args.path, "--requests", str(args.requests), "--out", out.name],
                       check=True, cwd=root)
        with open(out.name, encoding="utf-8") as handle:
            return json.load(handle)


def report(this, baseline, top):
    print(f"calls per request: this {sum(this.values()):.0f}, baseline {sum(baseline.values()):.0f}")
    print(f"{'by module':48s} {'this':>8s} {'baseline':>9s} {'change':>8s}")
    ours, theirs = collections.Counter(), collections.Counter()
    for key, count in this.items():
        ours[module_of(key)] += count
    for key, count in baseline.items():
        theirs[module_of(key)] += count
    for module in sorted(set(ours) | set(theirs), key=lambda m: -abs(ours[m] - theirs[m])):
        if abs(ours[module] - theirs[module]) >= 1:
            print(f"{module[-48:]:48s} {ours[module]:8.1f} {theirs[module]:9.1f} {ours[module] - theirs[module]:+8.1f}")
    print(f"\n{'by function (the largest changes)':72s} {'this':>6s} {'base':>6s} {'change':>7s}")
    changes = sorted(set(this) | set(baseline), key=lambda k: -abs(this.get(k, 0) - baseline.get(k, 0)))
    for key in changes[:top]:
        a, b = this.get(key, 0), baseline.get(key, 0)
        if a != b:
            print(f"{key[-72:]:72s} {a:6.1f} {b:6.1f} {a - b:+7.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="DIR", help="another checkout of the project")
    parser.add_argument("--path", default="/bench/limited/l1",
                        help="a route of bench/cache_harness.py (default: the rate-limited L1 hit)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--count-only", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_only:
        counts = count_in_this_process(args.count_only, args.path, args.requests)
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(counts, handle)
        return
    if not args.baseline:
        parser.error("--baseline DIR is required")
    report(counted_in(ROOT, args), counted_in(os.path.abspath(args.baseline), args), args.top)


if __name__ == "__main__":
    main()
