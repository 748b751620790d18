"""Bearer tokens, refresh rotation, logout, sessions with CSRF, login throttling."""
import pytest

from gateway_app.db import Session
from gateway_app.models import RefreshToken
from tests.conftest import PASSWORD, build_app, sign_up

ME = "/api/v1/settings/profile"


def token_pair(client, email, password=PASSWORD):
    response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_token_answers_access_and_refresh_token(client, tenant):
    body = token_pair(client, tenant.user["email"])
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"]
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200
    # only a digest of the refresh token is stored
    stored = {row.jti for row in Session.query(RefreshToken)}
    assert body["refresh_token"] not in stored and len(stored) >= 1


def test_refresh_rotates_and_reuse_revokes_the_family(client, tenant):
    first = token_pair(client, tenant.user["email"])
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200

    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.headers["Content-Type"] == "application/problem+json"
    # the family is revoked: the newest token of the family no longer works either
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


def test_refresh_rejects_unknown_token_and_validates_body(client):
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"}).status_code == 401
    missing = client.post("/api/v1/auth/refresh", json={})
    assert missing.status_code == 422 and "refresh_token" in missing.get_json()["errors"]


def test_logout_revokes_the_access_token_and_the_refresh_family(client, tenant):
    pair = token_pair(client, tenant.user["email"])
    headers = bearer(pair["access_token"])
    assert client.get(ME, headers=headers).status_code == 200  # warm the principal cache
    response = client.post("/api/v1/auth/logout", headers=headers,
                           json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    assert client.get(ME, headers=headers).status_code == 401
    assert client.post("/api/v1/auth/refresh",
                       json={"refresh_token": pair["refresh_token"]}).status_code == 401
    # another device of the same user keeps working
    assert tenant.get(ME).status_code == 200


def test_logout_needs_a_credential(client):
    assert client.post("/api/v1/auth/logout", json={}).status_code == 401


def test_unknown_email_and_wrong_password_answer_the_same(client, tenant):
    unknown = client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "x" * 12})
    wrong = client.post("/api/v1/auth/token", json={"email": tenant.user["email"], "password": "x" * 12})
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(unknown.get_json()) == strip(wrong.get_json())


ATTACKER = {"REMOTE_ADDR": "203.0.113.7"}
OWNER_ELSEWHERE = {"REMOTE_ADDR": "198.51.100.20"}


def test_repeated_failed_logins_are_throttled_per_account_and_address(client, tenant, tenant_factory):
    email = tenant.user["email"]
    for _ in range(5):
        assert client.post("/api/v1/auth/token", json={"email": email, "password": "wrong-password"},
                           environ_base=ATTACKER).status_code == 401
    blocked = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD},
                          environ_base=ATTACKER)
    assert blocked.status_code == 429
    body = blocked.get_json()
    assert body["layer"] == "login" and (body["limit"], body["window"], body["policy"]) == (5, 900, "account")
    assert int(blocked.headers["Retry-After"]) > 0
    # the session login shares the throttle; other accounts are unaffected
    assert client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                       environ_base=ATTACKER).status_code == 429
    other = tenant_factory()
    assert client.post("/api/v1/auth/token", json={"email": other.user["email"], "password": PASSWORD},
                       environ_base=ATTACKER).status_code == 200
    # the owner, from elsewhere, is not locked out by the attacker's guesses
    assert client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD},
                       environ_base=OWNER_ELSEWHERE).status_code == 200


def test_unknown_accounts_are_throttled_too(client):
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"email": "ghost@example.com", "password": "wrong-password"},
                    environ_base=ATTACKER)
    assert client.post("/api/v1/auth/token", json={"email": "ghost@example.com", "password": "wrong-password"},
                       environ_base=ATTACKER).status_code == 429


def login(client, email, password=PASSWORD):
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response


def test_session_login_sets_a_hardened_cookie_and_returns_csrf(client, tenant):
    response = login(client, tenant.user["email"])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("gw_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development; SESSION_COOKIE_SECURE turns it on
    assert response.get_json()["csrf_token"]
    assert client.get(ME).status_code == 200


def test_session_cookie_is_secure_when_configured(database_url, redis_url, redis_client):
    from tests.conftest import build_app, sign_up
    app = build_app(database_url, redis_url, SESSION_COOKIE_SECURE=True)
    with app.app_context():
        client = app.test_client()
        tenant = sign_up(client)
        response = client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD})
        assert "Secure" in response.headers["Set-Cookie"]
        Session.remove()
    app.extensions["gateway_engine"].dispose()


def test_session_state_change_needs_the_csrf_token(client, tenant):
    csrf = login(client, tenant.user["email"]).get_json()["csrf_token"]
    change = {"name": "Renamed"}
    missing = client.patch(ME, json=change)
    assert missing.status_code == 403 and "X-CSRF-Token" in missing.get_json()["detail"]
    assert client.patch(ME, json=change, headers={"X-CSRF-Token": "forged"}).status_code == 403
    ok = client.patch(ME, json=change, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.get_json()["name"] == "Renamed"


def test_session_logout_ends_the_session(client, tenant):
    csrf = login(client, tenant.user["email"]).get_json()["csrf_token"]
    stolen_cookie = client.get_cookie("gw_session").value
    response = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert client.get_cookie("gw_session") is None
    client.set_cookie("gw_session", stolen_cookie)
    assert client.get(ME).status_code == 401


def test_tampered_session_cookie_is_rejected(client, tenant):
    login(client, tenant.user["email"])
    value = client.get_cookie("gw_session").value
    session_id, _, signature = value.rpartition(".")
    client.set_cookie("gw_session", session_id[:-1] + ("A" if session_id[-1] != "A" else "B") + "." + signature)
    assert client.get(ME).status_code == 401
    client.set_cookie("gw_session", "made-up.cookie")
    assert client.get(ME).status_code == 401
    # a stale cookie never blocks logging in again
    assert client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD}).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_token_flow_on_both_databases(client, tenant):
    pair = token_pair(client, tenant.user["email"])
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    assert client.get(ME, headers=bearer(rotated.get_json()["access_token"])).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_concurrent_use_of_one_refresh_token_yields_one_winner(app, client, tenant):
    """Two requests spending the same refresh token at once: exactly one new pair, and
    the loser's attempt counts as reuse, so the family ends revoked."""
    import concurrent.futures
    import threading
    pair = token_pair(client, tenant.user["email"])
    barrier = threading.Barrier(2)

    def spend(_):
        with app.app_context():
            barrier.wait()
            response = app.test_client().post("/api/v1/auth/refresh",
                                              json={"refresh_token": pair["refresh_token"]})
            Session.remove()
            return response.status_code, response.get_json()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(spend, range(2)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 401]
    for status, body in results:
        if status == 200:  # the winner's new token belongs to the revoked family
            assert client.post("/api/v1/auth/refresh",
                               json={"refresh_token": body["refresh_token"]}).status_code == 401


def test_the_failed_login_count_is_shared_by_workers(database_url, redis_url, redis_client):
    from tests.conftest import build_app, sign_up
    worker_a, worker_b = build_app(database_url, redis_url), build_app(database_url, redis_url)
    try:
        with worker_a.app_context():
            email = sign_up(worker_a.test_client()).user["email"]
            Session.remove()
        wrong = {"email": email, "password": "wrong-password"}
        for worker, attempts in ((worker_a, 3), (worker_b, 2)):
            with worker.app_context():
                for _ in range(attempts):
                    assert worker.test_client().post("/api/v1/auth/token", json=wrong,
                                                     environ_base=ATTACKER).status_code == 401
                Session.remove()
        with worker_a.app_context():
            assert worker_a.test_client().post("/api/v1/auth/token", json=wrong,
                                               environ_base=ATTACKER).status_code == 429
            Session.remove()
    finally:
        worker_a.extensions["gateway_engine"].dispose()
        worker_b.extensions["gateway_engine"].dispose()


def test_logout_without_a_body_revokes_the_access_token(client, tenant):
    response = client.post("/api/v1/auth/logout", headers=tenant.headers)
    assert response.status_code == 204
    assert tenant.get(ME).status_code == 401


def test_api_keys_cannot_log_out(client, tenant):
    key = tenant.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": ["read"]}).get_json()["key"]
    response = client.post("/api/v1/auth/logout", headers={"X-API-Key": key}, json={})
    assert response.status_code == 400 and "settings/api-keys" in response.get_json()["detail"]


def test_logout_while_redis_is_down_is_503_and_revokes_nothing_it_cannot(database_url, private_redis):
    app = build_app(database_url, private_redis.url)
    with app.app_context():
        tenant = sign_up(app.test_client())
        assert tenant.get("/api/v1/settings/profile").status_code == 200
        private_redis.stop()
        try:
            refused = tenant.post("/api/v1/auth/logout", json={})
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
            assert "not revoked" in refused.get_json()["detail"]
        finally:
            private_redis.start()
        assert tenant.post("/api/v1/auth/logout", json={}).status_code == 204   # now it takes effect
        assert tenant.get("/api/v1/settings/profile").status_code == 401
        Session.remove()
        app.extensions["gateway_engine"].dispose()
