"""A database outage met anywhere (credentials, a handler's read or write) is 503 with
Retry-After, never 500, and the gateway recovers by itself: MariaDB behind a TCP proxy
the test cuts and restores (the shared server is never touched)."""
import pytest

from gateway_app.db import Session
from tests.conftest import build_app, sign_up
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def proxied(mysql_database, redis_url, redis_client):
    host_and_port = mysql_database.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_and_port.partition(":")
    proxy = TcpProxy(host, int(port or 3306)).start()
    app = build_app(mysql_database.replace(host_and_port, f"127.0.0.1:{proxy.port}"), redis_url)
    with app.app_context():
        yield app, proxy
    Session.remove()
    app.extensions["gateway_engine"].dispose()
    proxy.close()


def unavailable(response):
    return (response.status_code == 503 and response.headers.get("Retry-After") == "5"
            and response.mimetype == "application/problem+json"
            and response.get_json()["type"].endswith("database-unavailable"))


def test_a_database_outage_is_503_with_retry_after_and_recovers(proxied):
    app, proxy = proxied
    tenant = sign_up(app.test_client())
    assert tenant.get("/api/v1/customers").status_code == 200   # the principal is cached now
    Session.remove()
    proxy.cut()
    assert unavailable(tenant.get("/api/v1/customers?q=smith"))          # a read in a handler
    assert unavailable(tenant.post("/api/v1/customers", json={"name": "Ada", "phone": "+14155550123"}))
    assert tenant.get("/api/v1/customers").headers["X-Cache"].startswith("HIT")   # cached answers still served
    proxy.start()
    assert tenant.get("/api/v1/customers?q=smith").status_code == 200    # back by itself
    created = tenant.post("/api/v1/customers", json={"name": "Ada", "phone": "+14155550123"})
    assert created.status_code == 201, created.get_json()


def test_credentials_that_cannot_be_checked_are_503_with_retry_after(proxied):
    app, proxy = proxied
    tenant = sign_up(app.test_client())
    key = tenant.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": ["read"]}).get_json()["key"]
    Session.remove()
    proxy.cut()
    assert unavailable(tenant.client.get("/api/v1/customers", headers={"X-API-Key": key}))
    proxy.start()
    assert tenant.client.get("/api/v1/customers", headers={"X-API-Key": key}).status_code == 200


def test_a_database_lost_after_the_answer_was_made_leaves_the_answer_standing(
        mysql_database, redis_url, redis_client):
    """The connection dies between the view's query and the end of the request, so the
    session's rollback at teardown fails: the client still gets the view's answer, and
    the next request starts with a fresh session. Each request here has its own app
    context, as under gunicorn (no test-wide context keeps the session alive)."""
    from flask import jsonify
    from sqlalchemy import text

    from gateway_app.pipeline.declarations import gateway_policy

    host_and_port = mysql_database.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_and_port.partition(":")
    proxy = TcpProxy(host, int(port or 3306)).start()
    app = build_app(mysql_database.replace(host_and_port, f"127.0.0.1:{proxy.port}"), redis_url)

    @gateway_policy(public=True, exempt_limits=True)
    def read_then_lose_the_database():
        Session.execute(text("SELECT 1"))   # the session holds a connection now
        proxy.cut()
        return jsonify(answered=True)

    app.add_url_rule("/test/outage/after-answer", view_func=read_then_lose_the_database)
    try:
        answer = app.test_client().get("/test/outage/after-answer")
        assert answer.status_code == 200 and answer.get_json() == {"answered": True}
        proxy.start()
        ready = app.test_client().get("/ready")
        assert ready.status_code == 200, ready.get_json()
    finally:
        Session.remove()
        app.extensions["gateway_engine"].dispose()
        proxy.close()
