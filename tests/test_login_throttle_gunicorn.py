"""The failed-login limit is exact across processes: real gunicorn, 4 gevent workers, one Redis."""
import concurrent.futures
import uuid

import pytest
import requests

from tests.conftest import PASSWORD

pytestmark = pytest.mark.gunicorn


@pytest.fixture
def served(served_behind_proxy):
    return served_behind_proxy


def test_parallel_guesses_across_workers_never_exceed_the_limit(served):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(served.url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": "Guessed Co", "name": "Owner", "email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text

    def guess(n):
        path = ("/api/v1/auth/token", "/api/v1/auth/login")[n % 2]
        return requests.post(served.url + path, json={"email": email, "password": f"wrong-{n}"},
                             headers={"X-Forwarded-For": "203.0.113.60"}, timeout=30)
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        responses = list(pool.map(guess, range(30)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses
    assert {r.json()["layer"] for r in responses if r.status_code == 429} == {"login"}
    # the owner, from another address, still signs in
    owner = requests.post(served.url + "/api/v1/auth/token", json={"email": email, "password": PASSWORD},
                          headers={"X-Forwarded-For": "198.51.100.60"}, timeout=30)
    assert owner.status_code == 200, owner.text
