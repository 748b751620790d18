"""Real servers for the tests: Redis (private on a free port unless REDIS_URL is set),
MariaDB (TEST_DATABASE_URL, or the local server when reachable), and gunicorn."""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Ports for the servers the tests start: below Linux's ephemeral range (32768-60999), so no
# outbound connection takes one between free_port() and the server's bind, and a slice of
# their own for each pytest-xdist worker, so two workers never pick the same one.
PORTS_FIRST, PORTS_PER_WORKER, PORT_SLICES = 20000, 1500, 8
_port_choice = random.SystemRandom()   # not the random a test may seed


def worker_index():
    """0 for pytest-xdist's worker gw0 (and without xdist), 1 for gw1, ..."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def free_port():
    first = PORTS_FIRST + worker_index() % PORT_SLICES * PORTS_PER_WORKER
    for _ in range(200):
        port = _port_choice.randrange(first, first + PORTS_PER_WORKER)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


def wait_for_port(port, timeout=15.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class PrivateRedis:
    """A redis-server of our own, so tests may flush, stop and restart it freely."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gw-redis-")
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port):
            raise RuntimeError("private redis-server did not start")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# the key that marks a database of REDIS_URL as the tests' own (see tests/conftest.py)
OWNER_KEY = "voice-gateway-tests:owner"


class RedisNotOurs(Exception):
    """REDIS_URL gives no database the tests may empty; the message says why and what to do."""


def worker_redis_url(url, worker=None):
    """The database of a shared Redis (REDIS_URL) that this test process uses: the URL's
    database + 1 + the pytest-xdist worker's index (gw0 -> +1, gw1 -> +2). Never the URL's
    own database, which is the developer's; and only plain redis:// or rediss:// URLs,
    since the tests need a database number of their own to empty."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise RedisNotOurs(f"REDIS_URL={url}: the tests need a redis:// or rediss:// URL, whose "
                           "database numbers they can keep to themselves; unset REDIS_URL and they "
                           "start a private redis-server")
    path = parts.path.strip("/") or "0"
    if not path.isdigit():
        raise RedisNotOurs(f"REDIS_URL={url}: the path must be a database number")
    database = int(path) + 1 + (worker_index() if worker is None else worker)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def claim_redis_database(url):
    """Make ``url``'s database the tests' own, or raise RedisNotOurs: it must be empty, or
    hold the tests' marker (a run that stopped before cleaning up), never anyone's data."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        size = client.dbsize()
        if size and not client.exists(OWNER_KEY):
            raise RedisNotOurs(
                f"{url} holds {size} keys the tests did not make, and the tests empty the database "
                "they use. Point REDIS_URL at a Redis whose database number + 1 + worker (one per "
                "TEST_WORKERS) are free, or unset REDIS_URL to run a private redis-server")
        client.set(OWNER_KEY, "1")
    except redis.ResponseError as exc:   # e.g. "DB index is out of range"
        raise RedisNotOurs(f"{url}: {exc}; use a lower database number in REDIS_URL "
                           "or fewer TEST_WORKERS") from None
    except redis.RedisError as exc:
        raise RedisNotOurs(f"{url} is not reachable ({exc})") from None
    finally:
        client.close()


def empty_own_redis_database(client):
    """Empty the tests' own database (claimed by claim_redis_database), keeping it claimed.
    Refuses a database without the marker, so a mistake never empties someone's data."""
    if client.dbsize() and not client.exists(OWNER_KEY):
        raise RedisNotOurs(f"refusing to empty {client}: it is not marked as the tests' own")
    client.flushdb()
    client.set(OWNER_KEY, "1")


def release_redis_database(url):
    """Leave a database claimed by claim_redis_database empty, as it was found (keys it
    holds without the tests' marker are left alone)."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        if client.exists(OWNER_KEY):
            client.flushdb()
    finally:
        client.close()


def redis_available(url):
    try:
        return redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def mysql_server_url():
    """A SQLAlchemy URL of a reachable MariaDB/MySQL server database, or None."""
    from gateway_app.settings import normalise_database_url
    url = os.environ.get("TEST_DATABASE_URL") or "mysql+pymysql://root@127.0.0.1:3306/test"
    url = normalise_database_url(url)
    if not url.startswith("mysql"):
        return None
    import sqlalchemy
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return url
    except Exception:
        return None


class Gunicorn:
    """The real web process: `gunicorn -c conf/gunicorn.conf.py wsgi:app` on loopback."""

    def __init__(self, env, workers=4, app_uri="wsgi:app", config="conf/gunicorn.conf.py"):
        self.app_uri = app_uri      # tests and benches may serve a factory with extra routes
        self.config = config        # a bench may add hooks to the production configuration
        self.port = free_port()
        self.env = dict(os.environ, **env, PORT=str(self.port), WEB_CONCURRENCY=str(workers),
                        GATEWAY_BIND="127.0.0.1")
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = None
        self.log = tempfile.NamedTemporaryFile(prefix="gw-gunicorn-", suffix=".log", delete=False)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", self.config, self.app_uri],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        if not (wait_for_port(self.port, timeout) and self.wait_until_serving(deadline)):
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + self.output())
        return self

    def wait_until_serving(self, deadline):
        """The master listens before its workers have loaded the app: wait for a worker to
        answer (any status: a bench's bare app has no /health), so that a test's first
        request does not wait for workers to boot."""
        import requests
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.get(self.url + "/health", timeout=max(0.1, deadline - time.monotonic()))
                return True
            except requests.RequestException:
                time.sleep(0.05)
        return False

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, graceful=False):
        """Gunicorn's quick shutdown (SIGINT); ``graceful``: SIGTERM, which lets workers
        finish their requests but waits up to graceful_timeout for kept-alive connections
        (a test's session, the proxy's pool) to close."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM if graceful else signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None


class MotoS3:
    """moto's standalone server (PyPI moto[server]) on a loopback port: a real S3 protocol
    endpoint for the s3:// file store. Its buckets live in the server's memory and go with it."""

    ACCESS_KEY, SECRET_KEY, REGION = "testing-key", "testing-secret", "us-east-1"

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def endpoint_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def s3_options(self):
        return {"endpoint_url": self.endpoint_url, "region": self.REGION,
                "access_key_id": self.ACCESS_KEY, "secret_access_key": self.SECRET_KEY}

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, timeout=30):
            self.stop()
            raise RuntimeError("moto_server did not start")
        return self

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.REGION,
                            aws_access_key_id=self.ACCESS_KEY, aws_secret_access_key=self.SECRET_KEY)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
