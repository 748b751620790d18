"""Attacks through HTTP: forged tokens, scope and role escalation, secrets at rest and in logs."""
import datetime as dt
import logging

import jwt
import pytest
from sqlalchemy import MetaData, select

from gateway_app.db import Session
from gateway_app.identity.tokens import issue_access_token
from gateway_app.models import User
from tests.conftest import PASSWORD, api_key_headers, build_app, sign_up

PROFILE = "/api/v1/settings/profile"
SECRET = "test-secret-key-0123456789abcdef0123456789"
AUTH = {"issuer": "voice-gateway", "audience": "voice-gateway-api", "access_token_ttl": 900}


def claims_for(tenant, **overrides):
    now = dt.datetime.now(dt.timezone.utc)
    claims = {"sub": str(tenant.user["id"]), "cid": tenant.company["id"], "cv": 1,
              "iss": AUTH["issuer"], "aud": AUTH["audience"], "iat": now, "nbf": now,
              "exp": now + dt.timedelta(minutes=15), "jti": "f" * 32}
    claims.update(overrides)
    return claims


def rejected(client, token):
    response = client.get(PROFILE, headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 401 and response.headers["Content-Type"] == "application/problem+json"


def test_a_well_formed_token_is_accepted(client, tenant):
    """The control for the forgeries below: the same claims, properly signed, work."""
    token = jwt.encode(claims_for(tenant), SECRET, algorithm="HS256")
    assert client.get(PROFILE, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the HS512 forgery reuses the short test key
@pytest.mark.parametrize("forge", [
    pytest.param(lambda t: jwt.encode(claims_for(t), None, algorithm="none"), id="alg-none"),
    pytest.param(lambda t: jwt.encode(claims_for(t), "another-secret-key-0123456789abcdef", algorithm="HS256"),
                 id="wrong-key"),
    pytest.param(lambda t: jwt.encode(claims_for(t), SECRET, algorithm="HS512"), id="other-algorithm"),
    pytest.param(lambda t: jwt.encode(claims_for(t, aud="someone-else"), SECRET, algorithm="HS256"),
                 id="foreign-audience"),
    pytest.param(lambda t: jwt.encode(claims_for(t, iss="evil"), SECRET, algorithm="HS256"), id="foreign-issuer"),
    pytest.param(lambda t: jwt.encode({k: v for k, v in claims_for(t).items() if k != "exp"}, SECRET,
                                      algorithm="HS256"), id="no-expiry"),
    pytest.param(lambda t: jwt.encode(claims_for(t, cid=t.company["id"] + 1000), SECRET, algorithm="HS256"),
                 id="other-company-claim"),
    pytest.param(lambda t: jwt.encode(claims_for(t, cv=0), SECRET, algorithm="HS256"), id="old-credential-version"),
    pytest.param(lambda t: "not.a.jwt", id="garbage"),
])
def test_forged_tokens_are_rejected(client, tenant, forge):
    assert rejected(client, forge(tenant))


def test_an_expired_token_is_rejected(client, tenant):
    user = Session.get(User, tenant.user["id"])
    token = issue_access_token(SECRET, AUTH, user, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    assert rejected(client, token)


def test_a_bad_credential_is_never_treated_as_anonymous(client):
    signup = {"company_name": "C", "name": "N", "email": "n@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/signup", json=signup, headers={"X-API-Key": "gwk_bad"}).status_code == 401
    assert client.post("/api/v1/auth/signup", json=signup, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get(PROFILE, headers={"Authorization": "Bearer"}).status_code == 401


def make_key(tenant, scopes):
    return api_key_headers(tenant, scopes)


def test_a_read_key_cannot_write(client, tenant):
    read_key = make_key(tenant, ["read"])
    assert client.get("/api/v1/team/members", headers=read_key).status_code == 200
    denied = client.post("/api/v1/team/members", headers=read_key, json={"email": "x@example.com", "name": "X"})
    assert denied.status_code == 403 and denied.get_json()["permission"] == "team:manage"
    assert client.patch("/api/v1/settings/company", headers=read_key, json={"name": "x"}).status_code == 403
    write_key = make_key(tenant, ["write"])
    assert client.patch("/api/v1/settings/company", headers=write_key, json={"name": "By key"}).status_code == 200


def test_api_keys_cannot_mint_keys_or_act_as_a_user(client, tenant):
    write_key = make_key(tenant, ["write"])
    assert client.post("/api/v1/settings/api-keys", headers=write_key,
                       json={"name": "more", "scopes": ["write"]}).status_code == 403
    assert client.get(PROFILE, headers=write_key).status_code == 403
    # a key has no role, so it can never grant the owner role
    member = tenant.post("/api/v1/team/members", json={"email": "m@example.com", "name": "M"}).get_json()
    assert client.patch(f"/api/v1/team/members/{member['id']}", headers=write_key,
                        json={"role": "owner"}).status_code == 403


def every_stored_value(app):
    metadata = MetaData()
    metadata.reflect(app.extensions["gateway_engine"])
    values = []
    for table in metadata.sorted_tables:
        for row in Session.execute(select(table)).all():
            values.extend(str(value) for value in row)
    return "\n".join(values)


def test_secrets_never_appear_in_logs_responses_database_or_redis(database_url, redis_url, redis_client, caplog):
    app = build_app(database_url, redis_url, ACCESS_LOG=True)
    caplog.set_level(logging.DEBUG)
    try:
        with app.app_context():
            client = app.test_client()
            tenant = sign_up(client)
            pair = client.post("/api/v1/auth/token", json={"email": tenant.user["email"], "password": PASSWORD}).get_json()
            login = client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD})
            session_id = client.get_cookie("gw_session").value.rsplit(".", 1)[0]
            key = tenant.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": ["read"]}).get_json()["key"]
            assert client.get("/api/v1/team/members", headers={"X-API-Key": key}).status_code == 200
            later = [tenant.get("/api/v1/settings/api-keys"), tenant.get("/api/v1/team/members"),
                     tenant.get(PROFILE), login]
            secrets_ = {"password": PASSWORD, "api key": key, "refresh token": pair["refresh_token"],
                        "session id": session_id}
            stored = every_stored_value(app)
            redis_dump = b"\n".join(k + b"=" + (redis_client.get(k) or b"") for k in redis_client.keys("gw:identity:*"))
            for name, secret in secrets_.items():
                assert secret not in caplog.text, f"{name} in the logs"
                assert secret not in stored, f"{name} in the database"
                assert secret.encode() not in redis_dump, f"{name} in Redis"
                for response in later:
                    assert secret not in response.get_data(as_text=True), f"{name} in a response"
            assert '"path":"/api/v1/team/members"' in caplog.text  # the access log was captured
            Session.remove()
    finally:
        app.extensions["gateway_engine"].dispose()


# Routes any authenticated caller may use, by design.
NO_PERMISSION_NEEDED = {"auth.logout"}


def test_every_api_route_is_public_or_declares_a_known_permission(app):
    from gateway_app.identity.permissions import PERMISSIONS
    problems = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint in NO_PERMISSION_NEEDED:
            continue
        policy = getattr(app.view_functions[rule.endpoint], "gateway_policy", {})
        if policy.get("public"):
            continue
        permission = policy.get("permission")
        if permission not in PERMISSIONS:
            problems.append(f"{rule.endpoint} ({rule.rule}): permission={permission!r}")
    assert not problems, ("declare gateway_policy(permission=...) with a permission of "
                          "gateway_app/identity/permissions.py on: " + "; ".join(problems))
