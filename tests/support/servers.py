"""Real servers for the tests: Redis (private on a free port unless REDIS_URL is set),
MariaDB (TEST_DATABASE_URL, or the local server when reachable), and gunicorn."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    def __init__(self, env, workers=4, app_uri="wsgi:app"):
        self.app_uri = app_uri      # tests and benches may serve a factory with extra routes
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
            [sys.executable, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", self.app_uri],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        if not (wait_for_port(self.port, timeout) and self.wait_until_serving(deadline)):
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + self.output())
        return self

    def wait_until_serving(self, deadline):
        """The master listens before its workers have loaded the app: wait for a worker to
        answer /health, so that a test's first request does not wait for workers to boot."""
        import requests
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(self.url + "/health", timeout=max(0.1, deadline - time.monotonic())).ok:
                    return True
            except requests.RequestException:
                time.sleep(0.05)
        return False

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
