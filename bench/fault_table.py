"""Fault table (not a test): mixed read/write load through Redis, MariaDB and gunicorn faults.

    .venv/bin/python bench/fault_table.py [--seconds 6] [--clients 4] [--faults NAME,...] [--no-record]

A gateway of 4 gunicorn gevent workers (``conf/gunicorn.conf.py``) on a private MariaDB
and a private Redis, all started here on loopback ports and temporary directories, and
all stopped and removed at the end, whatever happens. A company is signed up through the
API; its read key, write key and bearer token drive a few client threads that mix reads
(customers and calls lists, some with ``Cache-Control: no-cache``) and writes
(``POST /api/v1/customers``, which takes no Idempotency-Key). Then, one after another,
each with its recovery: Redis killed and restarted, Redis frozen and resumed, MariaDB
killed and restarted, a gunicorn worker killed (the master respawns it), the master sent
SIGTERM and the gateway started again.

Per fault: the answers by kind, the acknowledged writes missing from the database
(checked with SQL after the fault's recovery and again at the end), and the time from
the fault's end (restart, resume) to the first N consecutive successful answers. The
table is printed and, unless ``--no-record``, added to bench/RESULTS.md with the command.
"""
import argparse
import collections
import datetime as dt
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pymysql  # noqa: E402
import requests  # noqa: E402

from bench.bench_services import unlimited_policy  # noqa: E402
from tests.support.servers import Gunicorn, PrivateRedis, free_port  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
RESULTS_GROUP = "## Fault table (`bench/fault_table.py`)"
LEAD_IN = 1.0            # seconds of healthy load before each fault, so a row shows the change
ERROR_PAUSE = 0.05       # a refused connection fails at once: a client pauses instead of spinning
PASSWORD = "fault-table-Passw0rd!"


# ---------------------------------------------------------------- the private servers

class PrivateMariaDB:
    """A mariadbd of our own (temporary data directory, free loopback port, no grant
    tables), so the script may kill and restart it; never the shared server on 3306."""

    def __init__(self, directory):
        self.dir = directory
        self.datadir = os.path.join(directory, "data")
        self.port = free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name   # mariadbd refuses root unless named
        self.process = None

    def url(self, database):
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def connect(self, database=None):
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database,
                               connect_timeout=2, autocommit=True)

    def install(self):
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                        f"--user={self.user}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def start(self, timeout=60):
        # --no-defaults: nothing from /etc/mysql (its port, socket or data directory)
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.dir}/sock", f"--pid-file={self.dir}/pid",
             f"--log-error={self.dir}/error.log", f"--user={self.user}", "--skip-grant-tables",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--max-connections=400"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:   # the port opens before InnoDB's recovery is done: wait for a session
                self.connect().close()
                return self
            except pymysql.MySQLError:
                time.sleep(0.1)
        raise RuntimeError(f"private mariadbd did not start (see {self.dir}/error.log)")

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


def gunicorn_workers(master_pid):
    """The pids of a gunicorn master's workers (its children), from /proc."""
    workers = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master_pid:
                        workers.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return workers


class Stack:
    """The gateway, its MariaDB and its Redis, and the faults done to them."""

    def __init__(self, workdir, workers):
        self.workdir = workdir
        self.mariadb = PrivateMariaDB(os.path.join(workdir, "mariadb"))
        self.redis = PrivateRedis()
        self.workers = workers
        self.gateway = None
        self.notes = []        # what a fault showed that is not a count (shutdown time, pids)

    def start(self):
        os.makedirs(self.mariadb.dir)
        self.mariadb.install().start()
        with self.mariadb.connect() as conn:
            conn.cursor().execute("CREATE DATABASE gateway CHARACTER SET utf8mb4")
        from gateway_app.migrate import upgrade
        upgrade(self.mariadb.url("gateway"))
        self.redis.start()
        env = {"DATABASE_URL": self.mariadb.url("gateway"), "REDIS_URL": self.redis.url,
               "REDIS_TLS_URL": "",   # an inherited one would win over REDIS_URL
               "GATEWAY_CONFIG": unlimited_policy(self.workdir),
               "SECRET_KEY": "fault-table-" + uuid.uuid4().hex,
               "FILE_STORAGE_URL": "file://" + os.path.join(self.workdir, "files"),
               "GATEWAY_ACCESS_LOG": "0"}
        self.gateway = Gunicorn(env, workers=self.workers)
        # inside the work directory, so it is removed with it (the config would make one in /tmp)
        self.gateway.env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(self.workdir, "prometheus")
        self.gateway.start()
        return self

    def stop(self):
        """Everything started, whatever state a fault left it in."""
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway.log.close()
            os.unlink(self.gateway.log.name)
        if self.redis.process is not None:
            self.redis.process.send_signal(signal.SIGCONT)   # a frozen Redis ignores SIGTERM
        self.redis.cleanup()
        self.mariadb.stop()

    # the faults: each a start and an end

    def kill_redis(self):
        self.redis.process.kill()
        self.redis.process.wait()

    def restart_redis(self):
        self.redis.start()      # same port and directory, empty (no persistence): a real restart

    def freeze_redis(self):
        self.redis.process.send_signal(signal.SIGSTOP)

    def resume_redis(self):
        self.redis.process.send_signal(signal.SIGCONT)

    def kill_mariadb(self):
        self.mariadb.kill()

    def restart_mariadb(self):
        self.mariadb.start()

    def kill_worker(self):
        victim = random.choice(gunicorn_workers(self.gateway.process.pid))
        os.kill(victim, signal.SIGKILL)
        self.notes.append(f"worker {victim} killed")

    def terminate_master(self):
        """SIGTERM to the master alone, as the platform sends it; wait until it has exited."""
        started = time.monotonic()
        self.gateway.process.send_signal(signal.SIGTERM)
        try:
            self.gateway.process.wait(40)
            self.notes.append(f"master exited {time.monotonic() - started:.1f} s after SIGTERM")
        except subprocess.TimeoutExpired:
            self.notes.append("master still running 40 s after SIGTERM; stopped with SIGKILL")
            os.killpg(self.gateway.process.pid, signal.SIGKILL)
            self.gateway.process.wait()

    def start_gateway(self):
        self.gateway.start()


Fault = collections.namedtuple("Fault", "name title inject end")

FAULTS = [
    Fault("redis-kill", "Redis SIGKILL, restarted", Stack.kill_redis, Stack.restart_redis),
    Fault("redis-freeze", "Redis SIGSTOP, SIGCONT", Stack.freeze_redis, Stack.resume_redis),
    Fault("mariadb-kill", "MariaDB SIGKILL, restarted", Stack.kill_mariadb, Stack.restart_mariadb),
    # the master respawns the worker by itself: the fault ends when it starts
    Fault("worker-kill", "gunicorn worker SIGKILL", Stack.kill_worker, None),
    Fault("master-term", "gunicorn master SIGTERM, started again", Stack.terminate_master,
          Stack.start_gateway),
]
BASELINE = Fault("baseline", "none (baseline)", None, None)


# ---------------------------------------------------------------- the tenant and the load

def sign_up(base_url):
    """A company of its own, through the API: its owner's bearer token, a read key and a write key."""
    tag = uuid.uuid4().hex[:10]
    email = f"owner-{tag}@fault-table.example"
    answer = requests.post(base_url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": f"Fault table {tag}", "name": "Fault Table", "email": email,
        "password": PASSWORD})
    answer.raise_for_status()
    company_id = answer.json()["company"]["id"]
    bearer = {"Authorization": f"Bearer {access_token(base_url, email)}"}
    keys = {}
    for scopes in (["read"], ["read", "write"]):
        created = requests.post(base_url + "/api/v1/settings/api-keys", headers=bearer, timeout=10,
                                json={"name": "fault table " + "+".join(scopes), "scopes": scopes})
        created.raise_for_status()
        keys[scopes[-1]] = created.json()["key"]
    return {"email": email, "company_id": company_id, "read": keys["read"], "write": keys["write"]}


def access_token(base_url, email):
    answer = requests.post(base_url + "/api/v1/auth/token", timeout=10,
                           json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


Outcome = collections.namedtuple(
    "Outcome", "kind started ended status retry_after error customer_id name detail")


class Client(threading.Thread):
    """One client: reads (two lists, with a read key or the bearer token, half of them with
    Cache-Control: no-cache) and writes (a customer with a unique name, with the write key)."""

    def __init__(self, index, base_url, credentials, bearer, phase, stop, outcomes, timeout):
        super().__init__(name=f"client-{index}", daemon=True)
        self.index, self.base_url, self.credentials = index, base_url, credentials
        self.bearer, self.phase, self.stop, self.outcomes = bearer, phase, stop, outcomes
        self.timeout = timeout
        self.rng = random.Random(f"{phase}-{index}")
        self.writes = 0

    def run(self):
        with requests.Session() as session:
            while not self.stop.is_set():
                outcome = self.send(session)
                self.outcomes.append(outcome)   # list.append is atomic: no lock needed
                if outcome.error:
                    self.stop.wait(ERROR_PAUSE)

    def send(self, session):
        roll = self.rng.random()
        if roll < 0.3:
            self.writes += 1
            name = f"fault-table {self.phase} client {self.index} #{self.writes} {uuid.uuid4().hex[:8]}"
            return self.request(session, "write", "POST", "/api/v1/customers",
                                {"X-API-Key": self.credentials["write"]}, {"name": name}, name)
        path = "/api/v1/customers" if roll < 0.65 else "/api/v1/calls?limit=25"
        headers = ({"Authorization": f"Bearer {self.bearer}"} if self.rng.random() < 1 / 3
                   else {"X-API-Key": self.credentials["read"]})
        if self.rng.random() < 0.5:
            headers["Cache-Control"] = "no-cache"
        return self.request(session, "read", "GET", path, headers, None, None)

    def request(self, session, kind, method, path, headers, body, name):
        started = time.monotonic()
        try:
            answer = session.request(method, self.base_url + path, headers=headers, json=body,
                                     timeout=self.timeout)
        except requests.Timeout as exc:
            return Outcome(kind, started, time.monotonic(), None, False, "timeout", None, name,
                           type(exc).__name__)
        except requests.RequestException as exc:
            # refused: nothing listens (no request was sent); dropped: the connection closed
            # under a sent request (a killed worker, a keep-alive connection closed by the server)
            refused = "NewConnectionError" in str(exc) or "Connection refused" in str(exc)
            reason = exc.args[0] if exc.args else exc
            reason = getattr(reason, "reason", reason)   # urllib3's MaxRetryError wraps the cause
            return Outcome(kind, started, time.monotonic(), None, False,
                           "refused" if refused else "dropped", None, name, str(reason)[-160:])
        ended = time.monotonic()
        customer_id = created_id(answer) if kind == "write" else None
        unexpected = answer.status_code >= 500 and (
            answer.status_code != 503 or "Retry-After" not in answer.headers) or (
            kind == "write" and answer.ok and customer_id is None)
        detail = (f"{method} {path} -> {answer.status_code} request id "
                  f"{answer.headers.get('X-Request-ID')}: "
                  f"{' '.join(answer.text.split())[:300]}") if unexpected else None
        return Outcome(kind, started, ended, answer.status_code, "Retry-After" in answer.headers,
                       None, customer_id, name, detail)


def created_id(answer):
    """The id of the customer a 2xx answer acknowledges (None for any other answer, or a
    2xx without one: reported as unexpected, as the write cannot be checked)."""
    if not answer.ok:
        return None
    try:
        return answer.json().get("id")
    except (ValueError, AttributeError):
        return None


class Load:
    """``clients`` client threads from start() to stop(), every answer kept in ``outcomes``."""

    def __init__(self, count, base_url, credentials, bearer, phase, timeout):
        self.stop_event = threading.Event()
        self.outcomes = []
        self.clients = [Client(i, base_url, credentials, bearer, phase, self.stop_event,
                               self.outcomes, timeout) for i in range(count)]

    def start(self):
        for client in self.clients:
            client.start()
        return self

    def stop(self):
        self.stop_event.set()
        for client in self.clients:
            client.join()


def succeeded(outcome):
    return outcome.status is not None and 200 <= outcome.status < 300


def recovery_seconds(outcomes, fault_end, streak_needed):
    """Seconds from the fault's end until the Nth of N consecutive successes (by the time
    they were answered, among requests sent after the end); None if never."""
    streak = 0
    for outcome in sorted((o for o in list(outcomes) if o.started >= fault_end),
                          key=lambda o: o.ended):
        streak = streak + 1 if succeeded(outcome) else 0
        if streak == streak_needed:
            return outcome.ended - fault_end
    return None


# ---------------------------------------------------------------- one phase

Phase = collections.namedtuple(
    "Phase", "fault outcomes fault_start fault_end recovery lost unacked_stored notes failure")


def run_phase(stack, fault, credentials, args):
    """Load, the fault (held --seconds when it has an end of its own), its end, then load
    until --seconds after the end and until recovered (at most --recover-timeout); then
    the acknowledged writes are checked."""
    base_url = stack.gateway.url
    bearer = access_token(base_url, credentials["email"])   # fresh: a token lives 15 minutes
    stack.notes = []
    load = Load(args.clients, base_url, credentials, bearer, fault.name, args.request_timeout).start()
    failure = None
    fault_start = fault_end = None
    try:
        time.sleep(LEAD_IN)
        fault_start = time.monotonic()
        if fault.inject:
            fault.inject(stack)
        if fault.end:
            time.sleep(args.seconds)
        fault_end = time.monotonic()
        if fault.end:
            fault.end(stack)   # a restart blocks until the server answers: part of the recovery
        while True:
            elapsed = time.monotonic() - fault_end
            if elapsed >= args.recover_timeout:
                break
            if elapsed >= args.seconds and recovery_seconds(load.outcomes, fault_end,
                                                            args.streak) is not None:
                break
            time.sleep(0.2)
    except Exception as exc:   # a server that would not come back: report it, stop the run
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        load.stop()
    recovery = recovery_seconds(load.outcomes, fault_end, args.streak) if fault_end else None
    try:
        lost, unacked_stored = check_writes(stack, credentials, load.outcomes)
    except pymysql.MySQLError as exc:   # the database did not come back: say so, not a count
        lost = unacked_stored = None
        failure = failure or f"writes not checked, database unreachable: {exc}"
    return Phase(fault, load.outcomes, fault_start, fault_end, recovery, lost, unacked_stored,
                 list(stack.notes), failure)


def stored_customers(stack, company_id):
    """{id: name} of the company's customers, read with SQL from the private database."""
    with stack.mariadb.connect("gateway") as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT id, name FROM customers WHERE company_id = %s", (company_id,))
        return dict(cursor.fetchall())


def check_writes(stack, credentials, outcomes):
    """(acknowledged writes missing or not as acknowledged, unacknowledged writes stored anyway)."""
    stored = stored_customers(stack, credentials["company_id"])
    writes = [o for o in outcomes if o.kind == "write"]
    lost = [o for o in writes if o.customer_id is not None and stored.get(o.customer_id) != o.name]
    stored_names = set(stored.values())
    unacked_stored = [o for o in writes if o.customer_id is None and o.name in stored_names]
    return lost, unacked_stored


# ---------------------------------------------------------------- the table

COLUMNS = ["fault", "requests", "2xx", "5xx not 503", "503 +Retry-After", "503 no Retry-After",
           "4xx", "refused", "dropped", "timeouts", "acked writes", "acked lost", "unacked, stored",
           "recovery s"]


def row(phase, streak, recover_timeout):
    outcomes = phase.outcomes
    status = collections.Counter(o.status for o in outcomes if o.status is not None)
    recovery = (f"{phase.recovery:.2f}" if phase.recovery is not None
                else "phase stopped" if phase.failure else f"not in {recover_timeout:.0f} s")
    return [phase.fault.title, len(outcomes), sum(n for s, n in status.items() if 200 <= s < 300),
            sum(n for s, n in status.items() if s >= 500 and s != 503),
            sum(1 for o in outcomes if o.status == 503 and o.retry_after),
            sum(1 for o in outcomes if o.status == 503 and not o.retry_after),
            sum(n for s, n in status.items() if 400 <= s < 500),
            sum(1 for o in outcomes if o.error == "refused"),
            sum(1 for o in outcomes if o.error == "dropped"),
            sum(1 for o in outcomes if o.error == "timeout"),
            sum(1 for o in outcomes if o.customer_id is not None),
            "unchecked" if phase.lost is None else len(phase.lost),
            "unchecked" if phase.unacked_stored is None else len(phase.unacked_stored), recovery]


def markdown_table(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(cell) for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def when(phase, outcome):
    """When a request was sent and answered, in seconds from the fault's start."""
    if phase.fault_start is None:
        return "before the fault"
    return (f"sent at {outcome.started - phase.fault_start:+.2f} s, answered at "
            f"{outcome.ended - phase.fault_start:+.2f} s from the fault's start (its end: "
            f"{(phase.fault_end or outcome.ended) - phase.fault_start:+.2f} s)")


def during_fault(phase, seconds):
    """The answered requests sent while the fault lasted (for one with no end of its own,
    a killed worker: the --seconds after it), for their latency."""
    if phase.fault_start is None or phase.fault_end is None:
        return []
    until = phase.fault_end if phase.fault.end else phase.fault_start + seconds
    return [o for o in phase.outcomes if phase.fault_start <= o.started < until and o.status]


def phase_details(phase, seconds):
    """Lines on what a count cannot say: statuses, latency, notes, the first unexpected answers."""
    statuses = collections.Counter(o.status or o.error for o in phase.outcomes)
    lines = [f"- {phase.fault.title}: " + ", ".join(f"{k}: {n}" for k, n in sorted(
        statuses.items(), key=lambda item: str(item[0])))]
    answered = sorted(o.ended - o.started for o in during_fault(phase, seconds))
    if answered and phase.fault.inject:
        lines[-1] += (f"; answers to requests sent during the fault: {len(answered)}, median "
                      f"{answered[len(answered) // 2] * 1000:.0f} ms, max {answered[-1] * 1000:.0f} ms")
    lines += [f"  - {note}" for note in phase.notes]
    if phase.failure:
        lines.append(f"  - the phase stopped: {phase.failure}")
    for outcome in [o for o in phase.outcomes if o.detail and o.status][:3]:
        lines.append(f"  - unexpected, {when(phase, outcome)}: {outcome.detail}")
    for outcome in [o for o in phase.outcomes if o.error == "dropped"][:3]:
        lines.append(f"  - dropped {outcome.kind}, {when(phase, outcome)}")
    for outcome in (phase.lost or [])[:5]:
        lines.append(f"  - LOST: customer {outcome.customer_id} ({outcome.name!r}) acknowledged, not stored")
    errors = collections.Counter((o.error, o.detail) for o in phase.outcomes if o.error)
    for (error, text), count in errors.most_common(3):
        lines.append(f"  - {error} x{count}: {text}")
    return lines


GUNICORN_PREFIX = re.compile(r"^\[[^]]*\] \[\d+\] ")   # "[date] [pid] ", so equal errors group


def log_records(log):
    """The log's records: a line with what follows it of a traceback (frames, chained ones)."""
    records, current, in_frames = [], [], False
    for line in log.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_frames = True
        elif in_frames:
            in_frames = line.startswith((" ", "\t"))   # the first line out of the frames ends it
        elif current and (not line.strip() or line.startswith(
                ("The above exception", "During handling of the above exception"))):
            pass
        else:
            records.append(current)
            current = []
        current.append(line)
    return [record for record in records + [current] if record]


def tracebacks(log):
    """{(a logged error's first line, its last exception line): (count, one whole record)}."""
    found = {}
    for record in log_records(log):
        if any(line.startswith("Traceback") for line in record):
            exception = [line for line in record if line.strip() and not line.startswith(" ")][-1]
            key = (GUNICORN_PREFIX.sub("", record[0])[:160], exception[:200])
            found[key] = (found.get(key, (0,))[0] + 1, "\n".join(record))
    return found


def record(command, table, details, args):
    """Add the run at the top of the fault-table group of bench/RESULTS.md (the group is made
    before "## Not yet recorded" the first time)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entry = (f"### Fault table, {stamp}\n\nCommand: `{command}` ({args.clients} clients, "
             f"{args.workers} gunicorn gevent workers, recovery = {args.streak} consecutive 2xx)\n\n"
             f"{table}\n\n" + "\n".join(details) + "\n\n")
    with open(RESULTS, encoding="utf-8") as handle:
        text = handle.read()
    if RESULTS_GROUP in text:
        at = text.index(RESULTS_GROUP) + len(RESULTS_GROUP) + 1
        at = text.index("\n### ", at) + 1 if "\n### " in text[at:] else at
    else:
        intro = (f"{RESULTS_GROUP}\n\nHow each fault was done and what the columns mean: "
                 "[README.md](README.md#fault_tablepy).\n\n")
        at = text.index("## Not yet recorded") if "## Not yet recorded" in text else len(text)
        text, at = text[:at] + intro + text[at:], at + len(intro)
    with open(RESULTS, "w", encoding="utf-8") as handle:
        handle.write(text[:at] + entry + text[at:])


# ---------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6,
                        help="seconds a fault lasts, and least seconds of load after its end")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--streak", type=int, default=20,
                        help="consecutive 2xx answers that count as recovered")
    parser.add_argument("--recover-timeout", type=float, default=60)
    parser.add_argument("--request-timeout", type=float, default=10)
    parser.add_argument("--faults", default=",".join(f.name for f in FAULTS),
                        help="comma-separated, in this order: " + ", ".join(f.name for f in FAULTS))
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    by_name = {f.name: f for f in FAULTS}
    unknown = [name for name in args.faults.split(",") if name not in by_name]
    if unknown:
        parser.error(f"unknown faults: {', '.join(unknown)}")
    args.fault_list = [by_name[name] for name in args.faults.split(",")]
    return args


def main():
    args = parse_args()
    command = shlex.join([".venv/bin/python", "bench/fault_table.py"] + sys.argv[1:])
    # a SIGTERM to the script still runs the finally below, which stops every server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="gw-fault-table-")
    stack = Stack(workdir, args.workers)
    phases = []
    try:
        stack.start()
        credentials = sign_up(stack.gateway.url)
        for fault in [BASELINE] + args.fault_list:
            print(f"{fault.title} ...", file=sys.stderr, flush=True)
            phases.append(run_phase(stack, fault, credentials, args))
            if phases[-1].failure:
                break
        everything = [o for phase in phases for o in phase.outcomes]
        final_lost, _ = check_writes(stack, credentials, everything)
        log = stack.gateway.output()
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    errors = tracebacks(log)
    for count, text in errors.values():   # the whole of each, for whoever fixes it
        print(f"--- gunicorn log, {count}x:\n{text}\n", file=sys.stderr)
    table = markdown_table([row(p, args.streak, args.recover_timeout) for p in phases])
    details = [line for phase in phases for line in phase_details(phase, args.seconds)]
    details.append(f"- at the end, over every phase: "
                   f"{sum(1 for o in everything if o.customer_id is not None)} acknowledged writes, "
                   f"{len(final_lost)} missing from the database; "
                   f"{sum(count for count, _text in errors.values())} tracebacks in the gunicorn log")
    details += [f"  - gunicorn log x{count}: {first} ... {last}"
                for (first, last), (count, _text) in errors.items()]
    print(f"\n{command}\n\n{table}\n\n" + "\n".join(details))
    if not args.no_record:
        record(command, table, details, args)


if __name__ == "__main__":
    main()
