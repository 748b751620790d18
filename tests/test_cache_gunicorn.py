"""Consistency across processes: real gunicorn, 4 gevent workers, one Redis. After a write's
response has been received, no worker serves data older than that write, from L1 or L2."""
import concurrent.futures
import uuid

import pytest
import requests

from gateway_app.migrate import upgrade
from tests.conftest import PASSWORD
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
ROUNDS = 25
READS_PER_ROUND = 16


# the real app plus the test-only cache routes (tests/support/cache_app.py)
CACHE_APP = "tests.support.cache_app:served_app()"


@pytest.fixture
def served(tmp_path, redis_url, redis_client):
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url, "GATEWAY_ACCESS_LOG": "0",
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"},
                      workers=4, app_uri=CACHE_APP).start()
    yield server
    server.stop()


def bearer(base_url):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(base_url + "/api/v1/auth/signup", json={
        "company_name": "Before any write", "name": "Owner", "email": email, "password": PASSWORD},
        timeout=10)
    assert signup.status_code == 201, signup.text
    token = requests.post(base_url + "/api/v1/auth/token",
                          json={"email": email, "password": PASSWORD}, timeout=10)
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def read(url, headers):
    # a new connection per read, so the reads spread over the workers
    response = requests.get(url, headers={**headers, "Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["name"], response.headers["X-Cache"]


def test_every_worker_sees_every_write_at_once(served):
    headers = bearer(served.url)
    urls = [served.url + "/test/cache/settings", served.url + "/test/cache/company_settings"]
    seen = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for round_number in range(ROUNDS):
            expected = f"write {round_number}"
            write = requests.post(served.url + "/test/cache/events", headers=headers, timeout=10,
                                  json={"event": "settings.changed", "name": expected})
            assert write.status_code == 200, write.text
            results = list(pool.map(lambda url: read(url, headers), urls * (READS_PER_ROUND // 2)))
            stale = [(name, status) for name, status in results if name != expected]
            assert not stale, f"round {round_number}: read older data than the write: {stale}"
            seen.extend(status for _name, status in results)
    # the rounds really went through both tiers of several workers, not only the handler
    assert {"MISS", "HIT-L1", "HIT-L2"} <= set(seen), set(seen)
