"""Rate limiting when Redis fails: fail open with per-process limits (default), or 503;
recovery when Redis returns; no 500s; and the in-memory mode when no Redis is configured."""
import copy
import logging
import os
import signal
import time

import pytest
import redis as redis_lib

from gateway_app.policy import load_policy
from tests.conftest import build_app, sign_up
from tests.support.queries import counted_queries
from tests.support.windows import clear_of_window_edge
from tests.test_rate_limit import from_ip, fresh_ip, register_test_routes

RETRY_INTERVAL = 0.2


def policy_with(fail_open):
    policy = copy.deepcopy(load_policy())
    policy["rate_limiting"]["fail_open"] = fail_open
    policy["rate_limiting"]["storage_retry_interval"] = RETRY_INTERVAL
    return policy


@pytest.fixture
def make_app(database_url, built_apps):
    def make(redis_url, fail_open=True):
        app = build_app(database_url, redis_url, GATEWAY_POLICY=policy_with(fail_open))
        register_test_routes(app)
        return built_apps(app)
    return make


def storage_errors(client):
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("gateway_rate_limit_storage_errors_total{"))


def shared_keys(url):
    return redis_lib.Redis.from_url(url).keys("LIMITS:*")


def test_redis_down_fails_open_with_per_process_limits_then_recovers(make_app, private_redis, caplog):
    app = make_app(private_redis.url)
    client = app.test_client()
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200
    assert shared_keys(private_redis.url)
    errors_before = storage_errors(client)

    private_redis.stop()
    ip = fresh_ip()
    clear_of_window_edge(60)   # the per-process counts' minute (50 a minute from an address)
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        responses = [client.get("/test-rl/public", **from_ip(ip)) for _ in range(51)]
    # still limited, per process: exactly the burst passes, nothing fails with 500
    assert [r.status_code for r in responses] == [200] * 50 + [429]
    assert all("RateLimit-Policy" in r.headers for r in responses)
    assert responses[-1].get_json()["layer"] == "ip"
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1   # one line per outage, not one per request
    assert storage_errors(client) > errors_before

    private_redis.start()       # same port
    time.sleep(RETRY_INTERVAL + 0.1)
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        recovered = client.get("/test-rl/public", **from_ip(fresh_ip()))
    assert recovered.status_code == 200
    assert shared_keys(private_redis.url)   # counted in Redis again (it restarted empty)
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_redis_down_fail_closed_answers_503(make_app, private_redis):
    app = make_app(private_redis.url, fail_open=False)
    client = app.test_client()
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200
    private_redis.stop()
    refused = client.get("/test-rl/public", **from_ip(fresh_ip()))
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.get_json()["type"].endswith("/rate-limiter-unavailable")
    assert refused.headers["Retry-After"] == "1"
    # routes exempt from limits do not depend on the limiter
    assert client.get("/health").status_code == 200
    private_redis.start()
    time.sleep(RETRY_INTERVAL + 0.1)
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200


def test_hung_redis_costs_one_socket_timeout_then_fails_open(make_app, private_redis):
    app = make_app(private_redis.url)
    client = app.test_client()
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        statuses = [client.get("/test-rl/public", **from_ip(fresh_ip())).status_code for _ in range(5)]
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert statuses == [200] * 5
    assert app.extensions["gateway"].pipeline.stage("rate_limiting").limiter.in_outage


def test_without_redis_limits_are_kept_in_memory(make_app):
    app = make_app(None)
    client = app.test_client()
    ip = fresh_ip()
    clear_of_window_edge(60)   # the per-process counts' minute (50 a minute from an address)
    statuses = [client.get("/test-rl/public", **from_ip(ip)).status_code for _ in range(51)]
    assert statuses == [200] * 50 + [429]
    limiter = app.extensions["gateway"].pipeline.stage("rate_limiting").limiter
    assert limiter.shared is None and not limiter.in_outage


@pytest.mark.parametrize("fail_open, expected", [(True, 200), (False, 503)])
def test_a_cached_principal_whose_check_redis_cannot_make_is_resolved_from_the_database(
        make_app, private_redis, fail_open, expected):
    """A warm request leaves its principal's version check to the limiter's script; with
    Redis gone that check cannot be made, so the request starts over and resolves the
    principal from the database - then the limiter degrades as configured, never a 500."""
    app = make_app(private_redis.url, fail_open=fail_open)
    tenant = sign_up(app.test_client())
    ip = fresh_ip()
    for _ in range(2):   # the second one goes ahead with the cached principal
        assert tenant.get("/test-rl/private", **from_ip(ip)).status_code == 200
    private_redis.stop()
    with counted_queries(app) as statements:
        answered = tenant.get("/test-rl/private", **from_ip(ip))
    assert answered.status_code == expected
    assert any("FROM users" in statement for statement in statements)
    if fail_open:
        assert "RateLimit-Policy" in answered.headers
