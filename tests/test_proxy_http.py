"""The proxy as RFC 9110 says an intermediary behaves: hop-by-hop headers both ways,
X-Forwarded-* and Via, answers without bodies (1xx, 204, 304, HEAD), and the configured
timeouts. The instance is tests/support/upstream_app.py under gunicorn; where an
instance must write what a WSGI server refuses to (hop-by-hop headers, a 103), it is a
socket server of the test's own."""
import socket
import threading
import time

import pytest

from gateway_app.cache import strong_etag
from gateway_app.policy import load_policy
from tests.conftest import build_app, sign_up
from tests.support.raw_instances import LoopbackServer
from tests.support.redis_monitor import redis_commands
from tests.support.servers import Gunicorn

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}


@pytest.fixture(scope="module")
def upstream():
    server = Gunicorn({}, workers=1, app_uri="tests.support.upstream_app:app").start()
    yield server
    server.stop()


def register(client, url):
    response = client.post("/gateway/admin/registry/analytics/instances", json={"url": url}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["healthy"] is True
    return response.get_json()


def stop_monitor(app):
    app.extensions["gateway"].pipeline.stage("service_discovery").monitor.stop()


@pytest.fixture
def timed_app(tmp_path, redis_url, redis_client):
    """The gateway with short proxy timeouts."""
    policy = load_policy()
    policy["service_discovery"]["proxy"].update(connect_timeout=0.3, read_timeout=0.5)
    app = build_app(f"sqlite:///{tmp_path}/timeouts.db", redis_url, GATEWAY_POLICY=policy)
    yield app
    stop_monitor(app)
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def proxied(app, client, tenant, upstream):
    register(client, upstream.url)
    yield tenant
    stop_monitor(app)


def test_hop_by_hop_request_headers_stay_and_forwarding_headers_are_set(proxied):
    response = proxied.client.get("/api/v1/analytics/echo", headers={
        **proxied.headers, "Connection": "keep-alive, X-Private", "X-Private": "secret",
        "Keep-Alive": "timeout=5", "TE": "trailers", "Upgrade": "h2c", "Proxy-Authorization": "Basic eA==",
        "X-Forwarded-For": "203.0.113.9", "Via": "1.1 edge", "X-Custom": "kept"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 200, response.get_json()
    received = {name.lower(): value for name, value in response.get_json()["headers"].items()}
    for hop in ("connection", "x-private", "keep-alive", "te", "upgrade", "proxy-authorization",
                "authorization"):
        assert hop not in received, hop
    assert received["x-custom"] == "kept"
    assert received["x-forwarded-for"] == "203.0.113.9, 198.51.100.7"
    assert received["x-forwarded-proto"] == "http"
    assert received["x-forwarded-host"] == "localhost"
    assert received["via"] == "1.1 edge, 1.1 gateway"
    # the instance's own headers come back
    assert response.headers["X-Upstream"] == "yes" and response.headers["Content-Language"] == "en"


def test_the_gateways_etag_and_x_cache_replace_the_instances(proxied):
    """A cacheable answer carries one ETag, the gateway's (of the body it stores and
    serves), and one X-Cache, saying what the gateway's cache did."""
    for headers, cache in (({"Cache-Control": "no-cache"}, "BYPASS"), ({}, "HIT-L2")):
        response = proxied.get("/api/v1/analytics/kpis?tagged=1", headers=headers)
        assert response.status_code == 200, response.get_json()
        assert response.headers["X-Upstream"] == "yes"
        assert response.headers.getlist("ETag") == [strong_etag(response.data)]
        assert response.headers.getlist("X-Cache") == [cache]


def test_204_304_and_head_answer_without_a_body(proxied):
    no_content = proxied.post("/api/v1/analytics/status/204", json={})
    assert no_content.status_code == 204 and no_content.data == b""
    not_modified = proxied.get("/api/v1/analytics/status/304", headers={"If-None-Match": '"v1"'})
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert not_modified.headers["ETag"] == '"v1"'
    head = proxied.client.head("/api/v1/analytics/download?bytes=5000", headers=proxied.headers)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == "5000"
    # the connection stays usable after answers without bodies
    assert proxied.get("/api/v1/analytics/download?bytes=7", headers={"Cache-Control": "no-cache"}).data \
        == bytes(range(7))


def test_a_client_error_of_the_instance_is_its_answer(proxied):
    answered = proxied.post("/api/v1/analytics/status/404", json={})
    assert answered.status_code == 404 and answered.get_json() == {"status": 404}


class RawInstance(LoopbackServer):
    """An instance writing its answers on the socket itself: ``/health`` is 200, anything
    else gets ``answer`` (bytes) and the connection is closed."""

    def __init__(self, answer):
        self.answer = answer
        super().__init__()

    def handle(self, connection):
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                block = connection.recv(65536)
                if not block:
                    break
                head += block
            if head.startswith(b"GET /health "):
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            else:
                connection.sendall(self.answer)


def test_hop_by_hop_answer_headers_are_dropped_and_interim_answers_skipped(app, client, tenant):
    instance = RawInstance(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Kept: yes\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\n\r\nfinal")
    try:
        register(client, instance.url)
        response = tenant.get("/api/v1/analytics/raw", headers={"Cache-Control": "no-cache"})
        assert response.status_code == 200 and response.data == b"final"
        assert response.headers["X-Kept"] == "yes"
        for hop in ("Connection", "X-Secret", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Link"):
            assert hop not in response.headers, hop
    finally:
        instance.close()
        stop_monitor(app)


def upstream_outcomes(client):
    text = client.get("/metrics").get_data(as_text=True)
    return [line for line in text.splitlines() if line.startswith("gateway_upstream_requests_total{")]


def test_a_slow_instance_meets_the_read_timeout(timed_app, upstream):
    client = timed_app.test_client()
    tenant = sign_up(client)
    entry = register(client, upstream.url)
    before = upstream_outcomes(client)
    started = time.monotonic()
    response = tenant.get("/api/v1/analytics/slow?seconds=3", headers={"Cache-Control": "no-cache"})
    assert response.status_code == 503 and response.get_json()["service"] == "analytics"
    assert time.monotonic() - started < 2.5     # proxy.read_timeout is 0.5 s
    assert [line for line in upstream_outcomes(client) if line not in before
            and f'instance="{entry["id"]}"' in line and 'status="timeout"' in line]


class FullBacklog:
    """A listener that answered its health checks, then stops accepting with its accept queue
    full: a new connection then gets no answer at all (its SYN is dropped)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.fillers = []

    def answer_health_checks(self):
        """Answer every connection until ``fill``: the check at registration and the
        monitor's first round, which starts with it and may come first, both connect."""
        self.answering = threading.Event()
        self.answering.set()
        self.listener.settimeout(0.05)

        def serve():
            while self.answering.is_set():
                try:
                    connection, _ = self.listener.accept()
                except TimeoutError:
                    continue
                with connection:
                    connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        self.server = threading.Thread(target=serve, daemon=True)
        self.server.start()

    def fill(self):
        self.answering.clear()
        self.server.join(5)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(self.listener.getsockname())
            self.fillers.append(filler)
        time.sleep(0.1)

    def close(self):
        for sock in [*self.fillers, self.listener]:
            sock.close()


def test_an_unreachable_instance_meets_the_connect_timeout(timed_app):
    client = timed_app.test_client()
    tenant = sign_up(client)
    instance = FullBacklog()
    try:
        instance.answer_health_checks()
        entry = register(client, instance.url)
        instance.fill()
        started = time.monotonic()
        response = tenant.get("/api/v1/analytics/kpis", headers={"Cache-Control": "no-cache"})
        assert response.status_code == 503
        assert time.monotonic() - started < 2.5    # proxy.connect_timeout is 0.3 s
        assert any(f'instance="{entry["id"]}"' in line and 'status="connect-failed"' in line
                   for line in upstream_outcomes(client))
    finally:
        instance.close()
        stop_monitor(timed_app)


def test_a_proxied_request_makes_one_round_trip_and_reuses_its_connection(proxied, redis_url):
    key = proxied.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": ["read"]}).get_json()["key"]
    headers = {"X-API-Key": key, "Cache-Control": "no-cache"}
    path = "/api/v1/analytics/kpis?bytes=64"    # the same answer every time
    for _ in range(3):   # the principal cached, the instance's connection kept, the answer stored
        proxied.client.get(path, headers=headers)
    # the health monitor's rounds are not the request's: let its first one end, and no other
    monitor = proxied.client.application.extensions["gateway"].pipeline.stage("service_discovery").monitor
    monitor.stop()
    monitor.thread.join(10)
    with redis_commands(redis_url) as seen:
        answers = [proxied.client.get(path, headers=headers) for _ in range(5)]
    assert all(answer.status_code == 200 for answer in answers)
    names = [command.split()[0].upper() for command in seen]
    names = [name for name in names if name not in {"HELLO", "CLIENT", "ECHO"}]
    # per request: the principal's versions, the cache's generations and the service's
    # registry and breaker versions in one MGET, written with the limiter's script
    assert names == ["MGET", "EVALSHA"] * 5
    mgets = [command for command in seen if command.upper().startswith("MGET")]
    assert all("gw:registry:{analytics}:version" in command and "gateway:breaker:{analytics}:version" in command
               for command in mgets)
    assert len({answer.headers["X-Peer"] for answer in answers}) == 1   # one kept connection


def test_a_removed_instance_leaves_no_kept_connection(app, client, tenant, upstream):
    entry = register(client, upstream.url)
    assert tenant.get("/api/v1/analytics/kpis?bytes=8", headers={"Cache-Control": "no-cache"}).status_code == 200
    stage = app.extensions["gateway"].pipeline.stage("service_discovery")
    assert len(stage.pools.pools[upstream.url].idle) == 1
    assert client.delete(f"/gateway/admin/registry/analytics/instances/{entry['id']}",
                         headers=ADMIN).status_code == 204
    assert tenant.get("/api/v1/analytics/kpis", headers={"Cache-Control": "no-cache"}).status_code == 200  # local
    assert upstream.url not in stage.pools.pools
    stop_monitor(app)


def metric_values(client, names):
    """{series line without its value: value} of the series in ``names`` (the process's
    registry outlives a test, so tests compare before and after)."""
    values = {}
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(names):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def test_upstream_latency_requests_and_health_are_in_the_metrics(app, client, tenant, upstream):
    entry = register(client, upstream.url)
    names = ("gateway_upstream_duration_seconds_count", "gateway_upstream_requests_total",
             "gateway_upstream_instance_healthy")
    before = metric_values(client, names)
    for _ in range(2):
        assert tenant.get("/api/v1/analytics/kpis?bytes=8", headers={"Cache-Control": "no-cache"}).status_code == 200
    assert tenant.post("/api/v1/analytics/status/404", json={}).status_code == 404
    after = metric_values(client, names)
    instance = entry["id"]

    def grew(series):
        return after.get(series, 0.0) - before.get(series, 0.0)
    assert grew('gateway_upstream_duration_seconds_count{service="analytics"}') == 3
    assert grew(f'gateway_upstream_requests_total{{instance="{instance}",service="analytics",status="200"}}') == 2
    assert grew(f'gateway_upstream_requests_total{{instance="{instance}",service="analytics",status="404"}}') == 1
    assert after[f'gateway_upstream_instance_healthy{{instance="{instance}",service="analytics"}}'] == 1
    stop_monitor(app)
