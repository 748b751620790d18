"""A new user's journey with API keys, black-box through HTTP (test client and real gunicorn)."""
import itertools
import uuid

import pytest
import requests
from sqlalchemy import event

from gateway_app.db import Session
from gateway_app.migrate import upgrade
from gateway_app.models import ApiKey
from tests.support.servers import Gunicorn

PASSWORD = "a long enough password"


def journey_until_key(post, get):
    """signup -> token -> create key; returns (bearer headers, created key body)."""
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    signup = post("/api/v1/auth/signup", json={"company_name": "New Co", "name": "New", "email": email,
                                                "password": PASSWORD})
    assert signup.status_code == 201
    assert body(signup)["user"]["role"] == "owner"
    pair = post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200
    bearer = {"Authorization": f"Bearer {body(pair)['access_token']}"}
    created = post("/api/v1/settings/api-keys", headers=bearer, json={"name": "integration", "scopes": ["read"]})
    assert created.status_code == 201
    return bearer, body(created)


def body(response):
    """requests spells it ``json()``, werkzeug's test response ``json``."""
    return response.json() if callable(response.json) else response.json


def test_signup_token_key_use_revoke(client):
    http = client
    bearer, created = journey_until_key(http.post, http.get)
    key = {"X-API-Key": created["key"]}
    for _ in range(3):
        assert http.get("/api/v1/team/members", headers=key).status_code == 200
    listed = body(http.get("/api/v1/settings/api-keys", headers=bearer))["data"]
    assert listed[0]["last_used_at"] is not None and "key" not in listed[0]
    assert http.delete(f"/api/v1/settings/api-keys/{created['id']}", headers=bearer).status_code == 204
    stopped = http.get("/api/v1/team/members", headers=key)
    assert stopped.status_code == 401 and stopped.headers["Content-Type"] == "application/problem+json"
    # a key of the right shape with a wrong secret is no better
    forged = created["key"][:-4] + ("AAAA" if not created["key"].endswith("AAAA") else "BBBB")
    assert http.get("/api/v1/team/members", headers={"X-API-Key": forged}).status_code == 401


def test_last_used_at_is_not_written_on_every_request(app, client):
    http = client
    _, created = journey_until_key(http.post, http.get)
    key = {"X-API-Key": created["key"]}
    updates = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            updates.append(statement)
    engine = app.extensions["gateway_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            assert http.get("/api/v1/team/roles", headers=key).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(updates) == 1
    Session.remove()
    assert Session.get(ApiKey, created["id"]).last_used_at is not None


@pytest.mark.gunicorn
def test_revocation_and_sessions_hold_across_four_gunicorn_workers(tmp_path, redis_url, redis_client):
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    # behind a trusted proxy: each request names a client address of its own, so the ip
    # burst (which refusals spend too) stays out of what this test checks
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url, "TRUSTED_PROXY_HOPS": "1",
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"}, workers=4).start()
    addresses = itertools.count(1)

    def from_own_address(kw):
        n = next(addresses)
        return {**kw, "headers": {**kw.get("headers", {}),
                                  "X-Forwarded-For": f"10.9.{n // 200}.{n % 200 + 1}"}}
    try:
        http = requests.Session()
        post = lambda path, **kw: http.post(server.url + path, timeout=10, **from_own_address(kw))  # noqa: E731
        get = lambda path, **kw: requests.get(server.url + path, timeout=10, **from_own_address(kw))  # noqa: E731
        bearer, created = journey_until_key(post, get)
        key = {"X-API-Key": created["key"]}
        # new connections spread over the workers, so every worker caches the principal
        assert {get("/api/v1/team/members", headers=key).status_code for _ in range(24)} == {200}
        revoked = requests.delete(f"{server.url}/api/v1/settings/api-keys/{created['id']}",
                                  headers=bearer, timeout=10)
        assert revoked.status_code == 204
        assert {get("/api/v1/team/members", headers=key).status_code for _ in range(24)} == {401}

        email = get("/api/v1/settings/profile", headers=bearer).json()["email"]
        login = post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200
        cookies = {"gw_session": login.cookies["gw_session"]}
        assert {get("/api/v1/settings/profile", cookies=cookies).status_code for _ in range(12)} == {200}
    finally:
        server.stop()
