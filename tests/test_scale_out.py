"""Two gateway instances (separate gunicorn masters, as two dynos would be) on one Redis
behave as one gateway: limits exact across both, an invalidation seen by both, a breaker
opened by one refusing in the other, health checks once per interval across both.

With GATEWAY_TEST_REDIS=cluster|sentinel (make test-redis-topologies) that Redis is a
local Cluster or Sentinel set."""
import concurrent.futures
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy
import yaml

from gateway_app.migrate import upgrade
from gateway_app.policy import DEFAULT_PATH
from gateway_app.ratelimit.quotas import Quota
from gateway_app.ratelimit.storage import BatchedRedisStorage
from gateway_app.redis_store import make_redis
from tests.conftest import PASSWORD
from tests.support.servers import Gunicorn, free_port

pytestmark = pytest.mark.gunicorn
CACHE_APP = "tests.support.cache_app:served_app()"   # the real app plus test-only cache routes


class Upstream(BaseHTTPRequestHandler):
    """One HTTP server standing in for Stripe (always failing) and for a remote analytics
    instance (healthy, counting its health checks)."""
    stripe_hits = []
    health_hits = []

    def do_GET(self):
        if self.path == "/health":
            Upstream.health_hits.append(1)
            return self.answer(200, {"status": "ok"})
        Upstream.stripe_hits.append(self.path)
        return self.answer(500, {"error": {"type": "api_error", "message": "outage"}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def two_instances(tmp_path, redis_url, redis_client):
    port = free_port()
    upstream = ThreadingHTTPServer(("127.0.0.1", port), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    Upstream.stripe_hits, Upstream.health_hits = [], []
    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)
    policy["service_discovery"]["health_check"].update(interval=1, timeout=0.5)
    policy["service_discovery"]["services"]["analytics"]["instances"] = [f"http://127.0.0.1:{port}"]
    policy_path = tmp_path / "gateway.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    database = f"sqlite:///{tmp_path}/served.db"   # one database, as the dynos share one
    upgrade(database)
    env = {"DATABASE_URL": database, "REDIS_URL": redis_url, "GATEWAY_CONFIG": str(policy_path),
           "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef", "TRUSTED_PROXY_HOPS": "1",
           "STRIPE_API_KEY": "sk_test_scale_out", "STRIPE_BASE_URL": f"http://127.0.0.1:{port}",
           "GATEWAY_ACCESS_LOG": "0"}
    servers = []
    try:
        for _ in range(2):
            servers.append(Gunicorn(env, workers=2, app_uri=CACHE_APP).start())
        yield servers, database
    finally:
        for server in servers:
            server.stop()
        upstream.shutdown()
        upstream.server_close()


def sign_up(url):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": "Two Dynos Co", "name": "Owner", "email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    token = requests.post(url + "/api/v1/auth/token", timeout=10,
                          json={"email": email, "password": PASSWORD}).json()["access_token"]
    return signup.json(), {"Authorization": f"Bearer {token}", "Connection": "close"}


def test_two_instances_behave_as_one_gateway(two_instances, redis_url, redis_client):
    (first, second), database = two_instances
    account, headers = sign_up(first.url)

    # limits: 400 of the user's 500/hour spent; 200 requests split between the two
    # instances, each from its own address: exactly the 100 left get through
    storage = BatchedRedisStorage(make_redis(redis_url))
    quota = Quota("user", "user", f"user:{account['user']['id']}", 500, 3600, f"c{account['company']['id']}")
    redis_client.set(storage.window_keys(quota.key)[1], 400, px=7_200_000)

    def attempt(n):
        server = (first, second)[n % 2]
        return server.url, requests.get(server.url + "/api/v1/no-such-route", timeout=10, headers={
            **headers, "X-Forwarded-For": f"10.9.{n // 200}.{n % 200 + 1}"}).status_code
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(200)))
    assert sum(status != 429 for _url, status in answers) == 100
    assert {url for url, status in answers if status != 429} == {first.url, second.url}
    redis_client.set(storage.window_keys(quota.key)[1], 0, px=7_200_000)

    # invalidation: both instances serve the cached name, a write through one is seen by both
    for server in (first, second, first, second):
        assert requests.get(server.url + "/test/cache/settings", headers=headers, timeout=10).status_code == 200
    write = requests.post(first.url + "/test/cache/events", headers=headers, timeout=10,
                          json={"event": "settings.changed", "name": "renamed by the first"})
    assert write.status_code == 200, write.text
    for server in (second, first):
        assert requests.get(server.url + "/test/cache/settings", headers=headers,
                            timeout=10).json()["name"] == "renamed by the first"

    # a breaker opened by the first instance's failures refuses in the second at once
    engine = sqlalchemy.create_engine(database)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE companies SET stripe_customer_id = 'cus_two'"))
    engine.dispose()
    for _ in range(5):   # failure_threshold
        assert requests.get(first.url + "/api/v1/billing/invoices", headers=headers, timeout=10).status_code == 503
    assert len(Upstream.stripe_hits) == 5
    refused = [requests.get(second.url + "/api/v1/billing/invoices", headers=headers, timeout=10)
               for _ in range(4)]
    assert [(r.status_code, r.json()["service"]) for r in refused] == [(503, "stripe")] * 4
    assert len(Upstream.stripe_hits) == 5   # the second instance never called Stripe

    # health checks: one per interval (1 s) across both instances' four workers
    Upstream.health_hits.clear()
    threading.Event().wait(4)
    assert 2 <= len(Upstream.health_hits) <= 5, len(Upstream.health_hits)   # unsynchronised: ~16
