"""Bodies stream through the proxy: a 200 MB upload and a 200 MB download through one
gunicorn worker raise its peak memory by less than 30 MB, and what was streamed is not
cached. The instance is tests/support/upstream_app.py under gunicorn; so is the gateway."""
import hashlib
import os

import pytest
import requests
import yaml

from gateway_app.migrate import upgrade
from gateway_app.policy import DEFAULT_PATH
from tests.support.servers import Gunicorn, PrivateRedis
from tests.support.upstream_app import BLOCK, pattern_of

SIZE = 200 * 1024 * 1024
MB = 1024 * 1024
PASSWORD = "correct horse battery staple"


def worker_of(server):
    """The pid of the one worker of a gunicorn server (a child of its master)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == server.process.pid:
                        return int(entry)
            except (OSError, IndexError, ValueError):
                continue
    raise AssertionError("no gunicorn worker")


def peak_rss(pid):
    """The process's peak resident memory so far (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class PatternBody:
    """A request body of ``size`` bytes read block by block, never held whole; its length
    is known, so it is sent with a Content-Length."""

    def __init__(self, size):
        self.size = size
        self.blocks = pattern_of(size)
        self.pending = b""

    def __len__(self):
        return self.size

    def read(self, amount=-1):
        if not self.pending:
            self.pending = next(self.blocks, b"")
        block, self.pending = self.pending[:amount], self.pending[amount:]
        return block


def pattern_digest(size):
    digest = hashlib.sha256()
    for block in pattern_of(size):
        digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A gateway (1 worker, its own Redis) whose analytics service is remote on one instance."""
    tmp_path = tmp_path_factory.mktemp("streaming")
    store = PrivateRedis().start()
    instance = Gunicorn({}, workers=1, app_uri="tests.support.upstream_app:app").start()
    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)
    policy["service_discovery"]["services"]["analytics"]["instances"] = [instance.url]
    policy["transform"]["max_content_length"] = 256 * MB
    policy_path = tmp_path / "gateway.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    database = f"sqlite:///{tmp_path}/streaming.db"
    upgrade(database)
    gateway = Gunicorn({"DATABASE_URL": database, "REDIS_URL": store.url, "GATEWAY_CONFIG": str(policy_path),
                        "SECRET_KEY": "streaming-test-secret-0123456789abcdef"}, workers=1).start()
    http = requests.Session()
    try:
        http.post(gateway.url + "/api/v1/auth/signup", timeout=10, json={
            "company_name": "Stream Co", "name": "Owner", "email": "stream@example.com", "password": PASSWORD})
        token = http.post(gateway.url + "/api/v1/auth/token", timeout=10, json={
            "email": "stream@example.com", "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield gateway, http
    finally:
        http.close()
        gateway.stop()
        instance.stop()
        store.cleanup()


@pytest.mark.gunicorn
def test_a_200_mb_download_and_upload_stream_through_one_worker(proxied):
    gateway, http = proxied
    warm = http.get(gateway.url + "/api/v1/analytics/download", params={"bytes": MB}, timeout=30)
    assert warm.status_code == 200 and len(warm.content) == MB, warm.text[:300]
    worker = worker_of(gateway)
    before = peak_rss(worker)

    with http.get(gateway.url + "/api/v1/analytics/download", params={"bytes": SIZE},
                  stream=True, timeout=60) as download:
        assert download.status_code == 200
        assert download.headers["Content-Length"] == str(SIZE)
        digest, received = hashlib.sha256(), 0
        for block in download.iter_content(BLOCK):
            digest.update(block)
            received += len(block)
    assert received == SIZE and digest.hexdigest() == pattern_digest(SIZE)

    uploaded = http.post(gateway.url + "/api/v1/analytics/upload", data=PatternBody(SIZE),
                         headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"bytes": SIZE, "sha256": pattern_digest(SIZE),
                               "content_length": str(SIZE), "transfer_encoding": None}

    grown = peak_rss(worker) - before
    assert grown < 30 * MB, f"the worker's peak memory grew by {grown / MB:.1f} MB"

    metrics = http.get(gateway.url + "/metrics", timeout=10).text
    sent = received_bytes = 0.0
    for line in metrics.splitlines():
        if line.startswith('gateway_upstream_bytes_total{direction="sent",service="analytics"}'):
            sent = float(line.split()[-1])
        if line.startswith('gateway_upstream_bytes_total{direction="received",service="analytics"}'):
            received_bytes = float(line.split()[-1])
    assert sent >= SIZE and received_bytes >= SIZE + MB


@pytest.mark.gunicorn
def test_an_unsized_answer_streams_chunked_and_is_not_cached(proxied):
    gateway, http = proxied
    path = gateway.url + "/api/v1/analytics/kpis"     # a cacheable route (analytics namespace)
    first = http.get(path, params={"bytes": 3 * BLOCK + 5, "chunked": "1"}, timeout=30)
    assert first.status_code == 200 and len(first.content) == 3 * BLOCK + 5
    assert "Content-Length" not in first.headers and first.headers["Transfer-Encoding"] == "chunked"
    assert first.headers["X-Cache"] == "MISS"
    again = http.get(path, params={"bytes": 3 * BLOCK + 5, "chunked": "1"}, timeout=30)
    assert again.headers["X-Cache"] == "MISS"          # a streamed answer was not stored


@pytest.mark.gunicorn
def test_an_answer_larger_than_the_buffer_is_streamed_and_not_cached(proxied):
    gateway, http = proxied
    path = gateway.url + "/api/v1/analytics/kpis"     # a cacheable route (analytics namespace)
    small = {"bytes": 1000}
    assert http.get(path, params=small, timeout=30).headers["X-Cache"] == "MISS"
    assert http.get(path, params=small, timeout=30).headers["X-Cache"] == "HIT-L2"   # kept, sized, small
    large = {"bytes": 300 * 1024}     # over proxy.buffer_bytes (256 KiB)
    first = http.get(path, params=large, timeout=30)
    assert first.status_code == 200 and len(first.content) == 300 * 1024
    assert first.headers["Content-Length"] == str(300 * 1024)
    assert http.get(path, params=large, timeout=30).headers["X-Cache"] == "MISS"


@pytest.mark.gunicorn
def test_a_chunked_upload_reaches_the_instance_whole(proxied):
    gateway, http = proxied
    body = b"".join(pattern_of(5 * BLOCK + 17))
    uploaded = http.post(gateway.url + "/api/v1/analytics/upload", data=iter([body[:1000], body[1000:]]),
                         headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    received = uploaded.json()
    assert received["bytes"] == len(body)
    assert received["sha256"] == hashlib.sha256(body).hexdigest()
