"""Limits are exact across processes: real gunicorn, 4 gevent workers, one Redis."""
import concurrent.futures
import uuid

import pytest
import requests

from gateway_app.ratelimit import Quota
from gateway_app.ratelimit.storage import BatchedRedisStorage
from tests.conftest import PASSWORD

pytestmark = pytest.mark.gunicorn


@pytest.fixture
def served(served_behind_proxy):
    return served_behind_proxy


def concurrently(call, times):
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        return list(pool.map(call, range(times)))


def test_twice_the_burst_from_one_address_lets_exactly_the_burst_through(served):
    def attempt(_):
        # anonymous: the ip layer only; the body fails validation after the limiter ran
        return requests.post(served.url + "/api/v1/auth/token", json={}, timeout=10,
                             headers={"X-Forwarded-For": "203.0.113.50"}).status_code
    statuses = concurrently(attempt, 100)
    assert statuses.count(429) == 50
    assert len(statuses) - statuses.count(429) == 50
    assert 500 not in statuses


def test_twice_the_remaining_user_budget_lets_exactly_it_through(served, redis_client):
    email = f"gunicorn-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(served.url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": "Gunicorn Co", "name": "Owner", "email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    user_id, company_id = signup.json()["user"]["id"], signup.json()["company"]["id"]
    token = requests.post(served.url + "/api/v1/auth/token", timeout=10,
                          json={"email": email, "password": PASSWORD}).json()["access_token"]
    # 400 of the user's 500/hour already spent: 200 concurrent requests, exactly 100 fit
    storage = BatchedRedisStorage(redis_client)
    _previous, current = storage.window_keys(Quota("user", "user", f"user:{user_id}", 500, 3600, f"c{company_id}").key)
    redis_client.set(current, 400, px=7_200_000)

    def attempt(n):
        # each from its own address (behind the trusted proxy), so the ip burst stays out of it
        return requests.get(served.url + "/api/v1/no-such-route", timeout=10, headers={
            "Authorization": f"Bearer {token}", "X-Forwarded-For": f"10.7.{n // 200}.{n % 200 + 1}"})
    responses = concurrently(attempt, 200)
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == 100
    assert {r.json()["layer"] for r in refused} == {"user"}
    assert sorted({r.status_code for r in responses}) == [404, 429]
