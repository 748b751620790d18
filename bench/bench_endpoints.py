"""Benchmark (not a test): every business list/detail endpoint uncached, against a bare view.

    .venv/bin/python bench/bench_endpoints.py [--seconds 2] [--rounds 2] [--connections 16]
    .venv/bin/python bench/bench_endpoints.py --database-url mysql+pymysql://root@127.0.0.1:3306/bench_endpoints

Each endpoint is requested with an API key (read scope) of the demo pro company and
``Cache-Control: no-cache``, so every request goes through the full pipeline and reaches
the database; a bare Flask view (bench/bare_body.py) answers the same body from memory on
the same gunicorn/gevent setup (one worker each, pinned to a core of their own), and
``wrk -t1`` loads each in turn, rounds interleaved so drift in the machine's load is
shared. The list endpoints are also measured on the largest company (``--largest``
calls). Then ``POST /api/v1/customers`` and ``PATCH /api/v1/customers/<id>`` (a key with
the write scope; their cache invalidation included) against the bare view answering
their body; the PATCH on one customer, then spread over a hundred of the company's (on
MariaDB, updates of one row wait for each other's commits). SQL statements per request come from a second gateway serving
bench/count_queries_app.py, measured apart so the counter costs the load nothing.
With ``--baseline DIR`` (another checkout, e.g. ``git archive <commit> | tar -x -C DIR``)
that checkout's gateway is served on the same database and Redis and measured in the
same rounds: a before/after in one run.

The MariaDB database named in ``--database-url`` must not exist: the bench creates it
and drops it at the end (it never touches a database it did not create).
"""
import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402
import sqlalchemy  # noqa: E402

from bench.bench_cache import GunicornIn, cpu_seconds, pin_processes, worker_pid  # noqa: E402
from bench.bench_endpoint_hit import wrk  # noqa: E402
from bench.bench_services import seed, unlimited_policy  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis  # noqa: E402

NO_CACHE = {"Cache-Control": "no-cache"}


def read_endpoints(call_id, customer_id):
    today = dt.date.today()
    week_ago, in_four_weeks = today - dt.timedelta(days=7), today + dt.timedelta(days=28)
    return [
        ("calls list", "/api/v1/calls?limit=25"),
        ("calls list, filtered", f"/api/v1/calls?limit=25&direction=inbound&from={today - dt.timedelta(days=30)}"),
        # words no summary holds: every one of the company's calls is read
        ("calls search, no match", "/api/v1/calls?limit=25&q=zqxj"),
        ("call detail", f"/api/v1/calls/{call_id}"),
        ("customers list", "/api/v1/customers?limit=25"),
        ("customers search", "/api/v1/customers?limit=25&q=smith"),
        # a text no customer holds: every one of the company's customers is read
        ("customers search, no match", "/api/v1/customers?limit=25&q=zqxj"),
        ("customer detail", f"/api/v1/customers/{customer_id}"),
        ("appointments calendar", f"/api/v1/appointments?from={week_ago}&to={in_four_weeks}"),
        ("team members", "/api/v1/team/members"),
        ("billing invoices", "/api/v1/billing/invoices"),
        ("billing usage", "/api/v1/billing/usage"),
        ("dashboard overview", "/api/v1/dashboard/overview"),
        ("dashboard metrics", "/api/v1/dashboard/metrics"),
        ("dashboard activity", "/api/v1/dashboard/activity"),
        ("analytics reports", "/api/v1/analytics/reports"),
        ("analytics kpis", "/api/v1/analytics/kpis"),
        ("analytics trends", "/api/v1/analytics/trends"),
    ]


LARGEST_LISTS = ("calls list", "calls list, filtered", "calls search, no match", "customers list",
                 "customers search", "customers search, no match")


class FreshMariaDB:
    """A database this bench creates (refusing one that exists) and drops at the end."""

    def __init__(self, url):
        self.url = sqlalchemy.engine.make_url(url)
        if not self.url.database:
            raise SystemExit("--database-url must name the database the bench will create")
        # connected to information_schema: the statements below name their database
        self.server = sqlalchemy.create_engine(self.url.set(database="information_schema"))
        self.created = False

    def create(self):
        with self.server.connect() as conn:
            exists = conn.execute(sqlalchemy.text("SELECT 1 FROM information_schema.schemata "
                                                  "WHERE schema_name = :name"),
                                  {"name": self.url.database}).first()
            if exists:
                raise SystemExit(f"database {self.url.database!r} exists: the bench only uses "
                                 "a database it creates; name another")
            conn.execute(sqlalchemy.text(f"CREATE DATABASE `{self.url.database}` "
                                         "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        self.created = True
        return self.url.render_as_string(hide_password=False)

    def drop(self):
        if self.created:
            with self.server.connect() as conn:
                conn.execute(sqlalchemy.text(f"DROP DATABASE `{self.url.database}`"))
        self.server.dispose()


def make_keys(database_url, workdir):
    """API keys: the pro company's read and write keys, the largest company's read key."""
    from gateway_app import create_app
    from gateway_app.demo import demo_email, demo_password
    app = create_app({"SQLALCHEMY_DATABASE_URL": database_url, "REDIS_URL": None, "ACCESS_LOG": False,
                      "GATEWAY_CONFIG": os.path.join(workdir, "gateway.yaml")})
    client = app.test_client()
    keys = {}
    for tier, name, scopes in (("pro", "read", ["read"]), ("pro", "write", ["read", "write"]),
                               ("unlimited", "largest", ["read"])):
        token = client.post("/api/v1/auth/token", json={"email": demo_email(tier),
                                                         "password": demo_password(tier)})
        bearer = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
        answer = client.post("/api/v1/settings/api-keys", headers=bearer,
                             json={"name": f"bench-{name}", "scopes": scopes})
        keys[name] = answer.get_json()["key"]
    app.extensions["gateway_engine"].dispose()
    return keys


def write_script(workdir, method, path, key, body_format, arguments):
    """A wrk Lua script sending ``method`` with a JSON body made distinct per request
    (a nonce per script: the e-mails of created customers never repeat across runs).
    ``path``: one path, or a list of paths taken in turn, request after request."""
    nonce = uuid.uuid4().hex[:10]
    paths = [path] if isinstance(path, str) else list(path)
    path_file = os.path.join(workdir, f"{method.lower()}-{nonce}.lua")
    with open(path_file, "w", encoding="utf-8") as handle:
        handle.write(f"""
counter = 0
nonce = "{nonce}"
paths = {{{", ".join(f'"{one}"' for one in paths)}}}
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
request = function()
  counter = counter + 1
  local body = string.format('{body_format}', {arguments})
  return wrk.format("{method}", paths[counter % #paths + 1], nil, body)
end
""")
    return path_file


def measure(server, path, headers, seconds, connections, script=None):
    """(req/s, p50 ms, p99 ms, worker CPU microseconds per request)."""
    pid = worker_pid(server)
    before = cpu_seconds(pid)
    rps, p50, p99 = wrk(server.url + path, headers, seconds, connections, script)
    return rps, p50, p99, (cpu_seconds(pid) - before) * 1e6 / max(1.0, rps * seconds)


def sql_per_request(counter, path, headers, method="GET", body=None):
    answers = [requests.request(method, counter.url + path, headers=headers, timeout=30,
                                json=body(i) if body else None) for i in range(3)]
    for answer in answers:
        if answer.status_code >= 400:
            raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
    return max(int(answer.headers["X-SQL-Queries"]) for answer in answers[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a MariaDB URL naming a database to create "
                                               "and drop (default: a temporary SQLite file)")
    parser.add_argument("--seconds", type=int, default=2, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="every target once per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3000, help="calls of each demo company")
    parser.add_argument("--largest", type=int, default=100000, help="calls of the largest company")
    parser.add_argument("--only", help="only endpoints whose name contains one of these "
                                       "comma-separated words")
    parser.add_argument("--no-writes", action="store_true")
    parser.add_argument("--no-largest", action="store_true")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout whose gateway is measured in the same rounds, "
                             "on the same database and Redis (a before/after in one run)")
    args = parser.parse_args()

    store = PrivateRedis().start()
    workdir = tempfile.mkdtemp(prefix="gw-bench-endpoints-")
    mariadb = FreshMariaDB(args.database_url) if args.database_url else None
    servers = []
    try:
        database = mariadb.create() if mariadb else f"sqlite:///{workdir}/bench.db"
        policy = unlimited_policy(workdir)
        seeded = seed(database, args.calls, args.calls if args.no_largest else args.largest)
        print(f"seeded in {seeded:.0f} s ({database.split(':')[0]})", flush=True)
        keys = make_keys(database, workdir)
        env = {"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_ACCESS_LOG": "0",
               "GATEWAY_CONFIG": policy, "SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
        gateway = Gunicorn(env, workers=1).start(timeout=60)
        counter = Gunicorn(dict(env, GATEWAY_COUNT_QUERIES="1"), workers=1,
                           app_uri="bench.count_queries_app:app").start(timeout=60)
        servers += [gateway, counter]
        baseline = baseline_counter = None
        if args.baseline:
            root = os.path.abspath(args.baseline)
            baseline_env = dict(env, GATEWAY_CONFIG=unlimited_policy(tempfile.mkdtemp(dir=workdir), root))
            baseline = GunicornIn(root, baseline_env, workers=1).start(timeout=60)
            baseline_counter = GunicornIn(root, dict(baseline_env, GATEWAY_COUNT_QUERIES="1"), workers=1,
                                          app_uri="bench.count_queries_app:app").start(timeout=60)
            servers += [baseline, baseline_counter]
        read = dict(NO_CACHE, **{"X-API-Key": keys["read"]})
        largest = dict(NO_CACHE, **{"X-API-Key": keys["largest"]})
        write = {"X-API-Key": keys["write"]}
        call_id = requests.get(gateway.url + "/api/v1/calls?limit=1", headers=read,
                               timeout=30).json()["data"][0]["id"]
        customer_ids = [item["id"] for item in requests.get(
            gateway.url + "/api/v1/customers?limit=100", headers=read, timeout=30).json()["data"]]
        customer_id = customer_ids[0]

        targets = []   # (name, path, headers, method, script, body for the SQL count)
        only = [word.strip() for word in args.only.split(",")] if args.only else None
        for name, path in read_endpoints(call_id, customer_id):
            if only and not any(word in name for word in only):
                continue
            targets.append((name, path, read, "GET", None, None))
            if name in LARGEST_LISTS and not args.no_largest:
                targets.append((name + " (largest)", path, largest, "GET", None, None))
        if not args.no_writes:
            targets.append(("customer create (POST)", "/api/v1/customers", write, "POST",
                            lambda: write_script(workdir, "POST", "/api/v1/customers", keys["write"],
                                                 '{"name": "Bench %d", "email": "bench-%s-%d@example.com"}',
                                                 "counter, nonce, counter"),
                            lambda i: {"name": "Bench", "email": f"bench-{uuid.uuid4().hex}@example.com"}))
            patch_path = f"/api/v1/customers/{customer_id}"
            targets.append(("customer update (PATCH)", patch_path, write, "PATCH",
                            lambda: write_script(workdir, "PATCH", patch_path, keys["write"],
                                                 '{"notes": "bench %s %d"}', "nonce, counter"),
                            lambda i: {"notes": f"bench count {i}"}))
            # one customer's row is locked by each write until it commits: on MariaDB the
            # 16 connections' updates of it wait for each other. Clients edit different
            # customers: the same update spread over the company's (the first page's) customers
            spread = [f"/api/v1/customers/{one}" for one in customer_ids]
            targets.append(("customer update (PATCH), spread", patch_path, write, "PATCH",
                            lambda: write_script(workdir, "PATCH", spread, keys["write"],
                                                 '{"notes": "bench %s %d"}', "nonce, counter"),
                            lambda i: {"notes": f"bench spread {i}"}))

        body_dir = os.path.join(workdir, "bodies")
        os.makedirs(body_dir)
        sizes, statements, baseline_statements = {}, {}, {}
        for index, (name, path, headers, method, script, body) in enumerate(targets):
            answer = requests.request(method, gateway.url + path, headers=headers, timeout=60,
                                      json=body(0) if body else None)
            if answer.status_code >= 400:
                raise SystemExit(f"{name}: {path} answered {answer.status_code}: {answer.text[:300]}")
            if answer.headers.get("X-Cache", "BYPASS") not in ("BYPASS", "MISS") and method == "GET":
                raise SystemExit(f"{name}: answered from a cache ({answer.headers['X-Cache']})")
            with open(os.path.join(body_dir, str(index)), "wb") as handle:
                handle.write(answer.content)
            sizes[name] = len(answer.content)
            statements[name] = sql_per_request(counter, path, headers, method, body)
            if baseline:
                before = requests.request(method, baseline.url + path, headers=headers, timeout=60,
                                          json=body(1) if body else None)
                if method == "GET" and before.content != answer.content:
                    print(f"note: {name}: the baseline answers other bytes", file=sys.stderr)
                baseline_statements[name] = sql_per_request(baseline_counter, path, headers, method, body)
        for server in (counter, baseline_counter):
            if server:
                server.stop()
                servers.remove(server)
        bare = Gunicorn(dict(env, BENCH_BODY_DIR=body_dir), workers=1,
                        app_uri="bench.bare_body:app").start()
        servers.append(bare)
        pinned = pin_processes([gateway, bare] + ([baseline] if baseline else []), store)

        results = {name: {"gateway": [], "bare": [], "baseline": []} for name, *_ in targets}
        for round_number in range(args.rounds):
            for index, (name, path, headers, method, script, _body) in enumerate(targets):
                sides = [("bare", bare, f"/bare/{index}", {}, None),
                         ("gateway", gateway, path, headers, script)]
                if baseline:
                    sides.append(("baseline", baseline, path, headers, script))
                for side, server, side_path, side_headers, side_script in sides:
                    if round_number == 0:
                        wrk(server.url + side_path, side_headers, 1, args.connections, side_script)
                    results[name][side].append(measure(server, side_path, side_headers, args.seconds,
                                                       args.connections, side_script))
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
        store.cleanup()
        if mariadb:
            mariadb.drop()

    def med(name, side, column):
        return statistics.median(r[column] for r in results[name][side])

    print(f"\n{'database':s}: {database.split(':')[0]}; wrk -t1 -c{args.connections} -d{args.seconds}s, "
          f"{args.rounds} rounds; 1 gevent worker per server"
          f"{', pinned to a core of their own' if pinned else ''}; "
          f"demo pro company ({args.calls} calls), largest company {args.largest} calls; medians")
    print(f"{'endpoint':32s} {'bytes':>7s} {'req/s':>7s} {'bare':>7s} {'ratio':>6s} "
          f"{'p50 ms':>7s} {'p99 ms':>7s} {'CPU us':>7s} {'bare us':>7s} {'CPU ratio':>9s} {'SQL':>4s}")
    for name, *_ in targets:
        rps, bare_rps = med(name, "gateway", 0), med(name, "bare", 0)
        line = (f"{name:32s} {sizes[name]:7d} {rps:7.0f} {bare_rps:7.0f} {rps / bare_rps:6.2f} "
                f"{med(name, 'gateway', 1):7.2f} {med(name, 'gateway', 2):7.2f} "
                f"{med(name, 'gateway', 3):7.0f} {med(name, 'bare', 3):7.0f} "
                f"{med(name, 'bare', 3) / med(name, 'gateway', 3):9.2f} {statements[name]:4d}")
        small = name.replace(" (largest)", "")
        if small != name and small in results:
            line += (f"   x{med(small, 'gateway', 0) / rps:.2f} the pro company's time "
                     f"(CPU x{med(name, 'gateway', 3) / med(small, 'gateway', 3):.2f})")
        print(line)
    if baseline:
        print(f"\nbaseline {args.baseline}, same rounds:")
        print(f"{'endpoint':32s} {'req/s':>7s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU us':>7s} "
              f"{'CPU ratio':>9s} {'SQL':>4s}   this gateway's CPU per request / the baseline's")
        for name, *_ in targets:
            rps, bare_rps = med(name, "baseline", 0), med(name, "bare", 0)
            print(f"{name:32s} {rps:7.0f} {rps / bare_rps:6.2f} {med(name, 'baseline', 1):7.2f} "
                  f"{med(name, 'baseline', 2):7.2f} {med(name, 'baseline', 3):7.0f} "
                  f"{med(name, 'bare', 3) / med(name, 'baseline', 3):9.2f} {baseline_statements[name]:4d}"
                  f"   {med(name, 'gateway', 3) / med(name, 'baseline', 3):.2f}")


if __name__ == "__main__":
    main()
