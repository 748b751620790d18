"""Simultaneous identical deliveries apply once: against real gunicorn (4 workers) on
SQLite and MariaDB, and from threads through the Flask app on MariaDB."""
import concurrent.futures
import json
import threading
import time

import pytest
import requests
import sqlalchemy
from sqlalchemy import func, select

from gateway_app.db import Base, Session
from gateway_app.models import Call, Company, Customer, WebhookEvent
from gateway_app.webhooks.signatures import retell_digest
from tests.conftest import link_provider_accounts, sign_up
from tests.support.servers import Gunicorn

AGENT = "agent_concurrency"
DELIVERIES = 12


def call_event(event, call_id="call_race_1"):
    now_ms = int(time.time() * 1000)
    call = {"call_type": "phone_call", "call_id": call_id, "agent_id": AGENT,
            "from_number": "+14155550123", "to_number": "+14155550100", "direction": "inbound",
            "call_status": "ongoing", "start_timestamp": now_ms - 60_000}
    if event != "call_started":
        call.update(call_status="ended", end_timestamp=now_ms, disconnection_reason="user_hangup")
    return json.dumps({"event": event, "call": call}, separators=(",", ":")).encode()


def retell_headers(body, version_ms):
    return {"Content-Type": "application/json",
            "x-retell-signature": f"v={version_ms},d={retell_digest('key_test', body, version_ms)}"}


def all_at_once(post, bodies):
    """Release every delivery together, so they race inside the server."""
    barrier = threading.Barrier(len(bodies))

    def deliver(body):
        barrier.wait()
        return post(body)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(deliver, bodies))


@pytest.fixture(params=["sqlite", "mysql"])
def served_database(request, tmp_path):
    url = (f"sqlite:///{tmp_path}/webhooks.db" if request.param == "sqlite"
           else request.getfixturevalue("mysql_database"))
    engine = sqlalchemy.create_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(Company.__table__.insert().values(name="Raced Dental", tier="free", timezone="UTC",
                                                       business_hours={}, integrations={},
                                                       retell_agent_id=AGENT, plan_minutes=500))
    yield url, engine
    engine.dispose()


@pytest.mark.gunicorn
def test_simultaneous_identical_deliveries_to_four_workers_apply_once(served_database, redis_url, redis_client):
    url, engine = served_database
    server = Gunicorn({"DATABASE_URL": url, "REDIS_URL": redis_url, "RETELL_API_KEY": "key_test",
                       "SECRET_KEY": "webhook-concurrency-secret-0123456789abcdef"}, workers=4).start()
    try:
        body = call_event("call_started")
        headers = retell_headers(body, int(time.time() * 1000))
        responses = all_at_once(
            lambda b: requests.post(server.url + "/webhooks/retell", data=b, headers=headers, timeout=30),
            [body] * DELIVERIES)
    finally:
        server.stop()
    assert [r.status_code for r in responses] == [200] * DELIVERIES, server.output()[-3000:]
    outcomes = sorted(r.json()["status"] for r in responses)
    assert outcomes == ["duplicate"] * (DELIVERIES - 1) + ["processed"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Call)) == 1
        assert conn.scalar(select(func.count()).select_from(Customer)) == 1
        assert conn.scalar(select(func.count()).select_from(WebhookEvent)) == 1


@pytest.fixture
def raced_company(webhook_app):
    tenant = sign_up(webhook_app.test_client())
    return link_provider_accounts(tenant.company["id"], retell_agent_id=AGENT)


def thread_poster(app, path, headers_for):
    def post(body):
        # a test client per thread: each request runs in its own thread with its own session
        response = app.test_client().post(path, data=body, headers=headers_for(body))
        Session.remove()
        return response
    return post


@pytest.mark.mysql
@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
def test_identical_and_crossing_deliveries_from_threads_on_mariadb(webhook_app, webhook_clock, raced_company):
    version_ms = int(webhook_clock() * 1000)
    post = thread_poster(webhook_app, "/webhooks/retell", lambda b: retell_headers(b, version_ms))
    started, ended = call_event("call_started"), call_event("call_ended")
    # call_started and call_ended of one call race each other, each delivered six times:
    # both events apply exactly once and neither creates a second call
    responses = all_at_once(post, [started, ended] * (DELIVERIES // 2))
    assert [r.status_code for r in responses] == [200] * DELIVERIES, [r.get_json() for r in responses]
    outcomes = sorted(r.get_json()["status"] for r in responses)
    assert outcomes == ["duplicate"] * (DELIVERIES - 2) + ["processed"] * 2
    Session.expire_all()
    assert Session.scalar(select(func.count()).select_from(Call)) == 1
    assert Session.scalar(select(func.count()).select_from(Customer)) == 1
    assert sorted(Session.scalars(select(WebhookEvent.event_id))) == [
        "call_race_1:call_ended", "call_race_1:call_started"]
    call = Session.scalar(select(Call))
    assert call.company_id == raced_company.id and call.ended_at is not None
    assert call.status == "answered"  # whichever event won the race
