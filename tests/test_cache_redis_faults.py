"""Redis faults: the cache steps aside (BYPASS), requests keep working, and an invalidation
that could not be written is replayed before the process serves from its cache again."""
import logging
import os
import signal
import time

import pytest

from gateway_app.db import Session
from gateway_app.policy import load_policy
from tests.conftest import sign_up
from tests.test_cache import emit, make_app

RETRY_AFTER_MS = 300
ADMIN = {"Authorization": "Bearer admin-token-for-tests"}


@pytest.fixture
def app(private_redis, tmp_path):
    policy = load_policy()
    policy["caching"]["redis_retry_after_ms"] = RETRY_AFTER_MS
    # the Redis breaker (redis_store.RedisBreaker) waits as long as the cache does
    app = make_app(f"sqlite:///{tmp_path}/faults.db", private_redis.url,
                   REDIS_SOCKET_TIMEOUT=0.2, REDIS_RETRY_AFTER=RETRY_AFTER_MS / 1000,
                   GATEWAY_POLICY=policy)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def tenant(client):
    return sign_up(client)


def wait_out_the_retry_interval():
    time.sleep(RETRY_AFTER_MS / 1000 + 0.05)


def test_redis_down_bypasses_and_recovers(client, tenant, private_redis, caplog):
    assert tenant.get("/test/cache/customers").headers["X-Cache"] == "MISS"
    private_redis.stop()
    caplog.set_level(logging.WARNING, logger="gateway.cache")
    for _ in range(3):
        response = tenant.get("/test/cache/customers")
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "BYPASS"
        assert "ETag" in response.headers
    assert any("Redis unreachable" in record.getMessage() for record in caplog.records)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_cache_redis_errors_total{operation="generations"}' in metrics
    assert 'gateway_cache_lookups_total{namespace="customers",outcome="bypass",tier="l2"}' in metrics
    # no stale copy is reachable, and a purge cannot be recorded: said so, not a 500
    purge = client.post("/gateway/admin/cache/purge", json={"namespace": "calls"}, headers=ADMIN)
    assert purge.status_code == 503 and purge.get_json()["type"].endswith("cache-unavailable")

    private_redis.start()   # same port, empty
    wait_out_the_retry_interval()
    assert tenant.get("/test/cache/customers").headers["X-Cache"] == "MISS"
    assert tenant.get("/test/cache/customers").headers["X-Cache"] == "HIT-L2"
    assert any("reachable again" in record.getMessage() for record in caplog.records)


def test_a_view_depending_on_a_provider_answers_while_redis_is_down(tenant, private_redis):
    """Billing declares Stripe: its breaker's version, read with each request, is unread
    while Redis is down, and the breaker's own per-process state decides."""
    assert tenant.get("/api/v1/billing/invoices").status_code == 200
    private_redis.stop()
    for _ in range(3):
        response = tenant.get("/api/v1/billing/invoices")
        assert response.status_code == 200, response.get_data(as_text=True)
    private_redis.start()
    wait_out_the_retry_interval()
    assert tenant.get("/api/v1/billing/invoices").status_code == 200


def test_hung_redis_bypasses_and_a_write_meanwhile_is_never_hidden_by_l1(tenant, private_redis):
    before = tenant.get("/test/cache/calls")
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
    os.kill(private_redis.process.pid, signal.SIGSTOP)   # hangs: every call hits the socket timeout
    try:
        hung = tenant.get("/test/cache/calls")
        assert hung.status_code == 200 and hung.headers["X-Cache"] == "BYPASS"
        assert hung.get_json()["run"] > before.get_json()["run"]
        emit(tenant, "calls.created", name="Written while Redis hung")
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    wait_out_the_retry_interval()
    # Redis kept its data (the old token and the old L2 entry): only the replayed
    # invalidation stands between this worker's L1 and a stale answer
    after = tenant.get("/test/cache/calls")
    assert after.headers["X-Cache"] == "MISS"
    assert after.get_json()["name"] == "Written while Redis hung"
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"


def redis_metric(app, name):
    text = app.test_client().get("/metrics").get_data(as_text=True)
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0].split()[-1]) if found else 0.0


def test_a_hung_redis_is_waited_for_once_per_interval_by_every_use(app, tenant, private_redis):
    """Authentication, rate limiting and caching each use Redis on every request: while
    it hangs, one call waits for the socket timeout, and every use after it skips Redis
    for the interval, so the requests meanwhile pay no timeout at all."""
    fresh = {"X-API-Key": tenant.post("/api/v1/settings/api-keys", json={
        "name": "k", "scopes": ["read"]}).get_json()["key"]}
    for _ in range(2):
        tenant.client.get("/test/cache/calls", headers=fresh)
    timed_out, skipped = (redis_metric(app, "gateway_redis_failures_total"),
                          redis_metric(app, "gateway_redis_skipped_total"))
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        for _ in range(6):
            answered = tenant.client.get("/test/cache/calls", headers=fresh)
            assert answered.status_code == 200 and answered.headers["X-Cache"] == "BYPASS"
        assert redis_metric(app, "gateway_redis_failures_total") == timed_out + 1
        assert redis_metric(app, "gateway_redis_skipped_total") > skipped + 6
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    wait_out_the_retry_interval()
    assert tenant.client.get("/test/cache/calls", headers=fresh).headers["X-Cache"] in ("MISS", "HIT-L1")
