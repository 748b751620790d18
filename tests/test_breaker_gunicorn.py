"""Four gunicorn workers share one breaker per upstream through Redis."""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy

from gateway_app.migrate import upgrade
from tests.conftest import PASSWORD
from tests.support.servers import Gunicorn, free_port

pytestmark = pytest.mark.gunicorn


class FailingStripe(BaseHTTPRequestHandler):
    """A real HTTP server standing in for Stripe during an outage."""
    hits = []

    def do_GET(self):
        FailingStripe.hits.append(self.path)
        body = json.dumps({"error": {"type": "api_error", "message": "outage"}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def outage(tmp_path, redis_url, redis_client):
    port = free_port()
    stripe = ThreadingHTTPServer(("127.0.0.1", port), FailingStripe)
    threading.Thread(target=stripe.serve_forever, daemon=True).start()
    FailingStripe.hits = []
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url,
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef",
                       "STRIPE_API_KEY": "sk_test_gunicorn", "STRIPE_BASE_URL": f"http://127.0.0.1:{port}",
                       "GATEWAY_ACCESS_LOG": "0"}, workers=4).start()
    yield server, database
    server.stop()
    stripe.shutdown()


def test_workers_share_the_breaker_and_stop_calling_a_failing_upstream(outage):
    server, database = outage
    signup = requests.post(server.url + "/api/v1/auth/signup", timeout=10, json={
        "company_name": "Shared Co", "name": "Owner", "email": "owner@shared.example", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    engine = sqlalchemy.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE companies SET stripe_customer_id = 'cus_shared'"))
    engine.dispose()
    token = requests.post(server.url + "/api/v1/auth/token", timeout=10, json={
        "email": "owner@shared.example", "password": PASSWORD}).json()["access_token"]

    answers = []
    for _ in range(12):      # a new connection each time, so the requests spread over the workers
        response = requests.get(server.url + "/api/v1/billing/invoices", timeout=10,
                                headers={"Authorization": f"Bearer {token}", "Connection": "close"})
        answers.append((response.status_code, response.json().get("service"),
                        "Retry-After" in response.headers))
    assert answers == [(503, "stripe", True)] * 12
    assert len(FailingStripe.hits) == 5          # the 6th and later were refused by every worker
    assert all(hit.startswith("/invoices?customer=cus_shared") for hit in FailingStripe.hits)
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    refused = sum(float(value) for value in re.findall(
        r'gateway_breaker_rejections_total\{service="stripe"\} (\S+)', metrics))
    assert refused == 7
