"""The principal cache: no database query on a warm request, yet tier, role and
revocation changes apply on the next request, in every worker."""

import pytest
from flask import g

from gateway_app.db import Session
from tests.conftest import PASSWORD, build_app, sign_up
from tests.support.queries import counted_queries

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
NO_DB_VIEW = "/api/v1/team/roles"  # answers from the permission matrix alone


def credentials(client, tenant):
    """Header sets for each credential kind (the session one carries its cookie in client)."""
    key = tenant.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": ["read"]}).get_json()["key"]
    return {"token": tenant.headers, "api_key": {"X-API-Key": key}}


@pytest.fixture(params=["redis", "in-process"])
def any_store_app(request, database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url if request.param == "redis" else None)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.mark.parametrize("kind", ["token", "api_key"])
def test_a_warm_request_costs_no_database_query(any_store_app, kind):
    client = any_store_app.test_client()
    tenant = sign_up(client)
    headers = credentials(client, tenant)[kind]
    assert client.get(NO_DB_VIEW, headers=headers).status_code == 200  # cold: resolves from the DB
    Session.remove()
    with counted_queries(any_store_app) as statements:
        for _ in range(3):
            assert client.get(NO_DB_VIEW, headers=headers).status_code == 200
    assert statements == []


def test_a_warm_session_request_costs_no_database_query(any_store_app):
    client = any_store_app.test_client()
    tenant = sign_up(client)
    assert client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD}).status_code == 200
    assert client.get(NO_DB_VIEW).status_code == 200
    Session.remove()
    with counted_queries(any_store_app) as statements:
        assert client.get(NO_DB_VIEW).status_code == 200
    assert statements == []


def principal_after(client, path, headers):
    with client:
        assert client.get(path, headers=headers).status_code == 200
        return g.gateway.principal


def test_a_tier_change_applies_to_the_next_request(app, client, tenant):
    headers = credentials(client, tenant)
    for kind in ("token", "api_key"):
        assert principal_after(client, NO_DB_VIEW, headers[kind]).tier == "free"
    response = client.patch(f"/gateway/admin/companies/{tenant.company['id']}", headers=ADMIN,
                            json={"tier": "enterprise"})
    assert response.status_code == 200 and response.get_json()["tier"] == "enterprise"
    for kind in ("token", "api_key"):
        assert principal_after(client, NO_DB_VIEW, headers[kind]).tier == "enterprise"


def test_a_tier_change_reaches_another_worker(database_url, redis_url, redis_client):
    """Two app instances (two workers) share Redis and the database, not their memory."""
    worker_a = build_app(database_url, redis_url)
    worker_b = build_app(database_url, redis_url)
    try:
        with worker_a.app_context():
            client_a = worker_a.test_client()
            tenant = sign_up(client_a)
            assert principal_after(client_a, NO_DB_VIEW, tenant.headers).tier == "free"
            Session.remove()
        with worker_b.app_context():
            response = worker_b.test_client().patch(
                f"/gateway/admin/companies/{tenant.company['id']}", headers=ADMIN, json={"tier": "pro"})
            assert response.status_code == 200
            Session.remove()
        with worker_a.app_context():
            assert principal_after(client_a, NO_DB_VIEW, tenant.headers).tier == "pro"
            Session.remove()
    finally:
        worker_a.extensions["gateway_engine"].dispose()
        worker_b.extensions["gateway_engine"].dispose()


NO_CACHE = {"Cache-Control": "no-cache"}
LOCAL_TIME_VIEWS = ("/api/v1/dashboard/overview", "/api/v1/dashboard/metrics",
                    "/api/v1/appointments", "/api/v1/analytics/kpis")


def test_a_timezone_change_applies_to_the_next_request(app, client, tenant):
    """The principal carries the company's timezone; changing it reaches every cached
    principal of the company, whatever credential the next request brings."""
    headers = credentials(client, tenant)
    for kind in ("token", "api_key"):
        for path in LOCAL_TIME_VIEWS:
            answer = client.get(path, headers={**headers[kind], **NO_CACHE})
            assert answer.status_code == 200 and answer.get_json()["timezone"] == "UTC", path
    assert tenant.patch("/api/v1/settings/company", json={"timezone": "Asia/Tokyo"}).status_code == 200
    for kind in ("token", "api_key"):
        assert principal_after(client, NO_DB_VIEW, headers[kind]).timezone == "Asia/Tokyo"
        for path in LOCAL_TIME_VIEWS:
            answer = client.get(path, headers={**headers[kind], **NO_CACHE})
            assert answer.status_code == 200 and answer.get_json()["timezone"] == "Asia/Tokyo", path


def test_a_date_filter_reads_the_changed_timezone(app, client, tenant):
    """A call at 20:00 UTC on a date is on the next local date in Tokyo (UTC+9)."""
    import datetime as dt

    from gateway_app.models import Call
    headers = credentials(client, tenant)["api_key"]
    Session.add(Call(company_id=tenant.company["id"], direction="inbound", status="answered",
                     from_number="+15550000001", to_number="+15550000002",
                     started_at=dt.datetime(2030, 5, 1, 20, 0, tzinfo=dt.timezone.utc)))
    Session.commit()

    def listed(day):
        answer = client.get(f"/api/v1/calls?from={day}&to={day}", headers={**headers, **NO_CACHE})
        assert answer.status_code == 200
        return len(answer.get_json()["data"])
    assert (listed("2030-05-01"), listed("2030-05-02")) == (1, 0)
    assert tenant.patch("/api/v1/settings/company", json={"timezone": "Asia/Tokyo"}).status_code == 200
    assert (listed("2030-05-01"), listed("2030-05-02")) == (0, 1)


def test_a_warm_request_in_local_time_does_not_read_the_timezone(app, client, tenant):
    headers = credentials(client, tenant)["api_key"]
    for path in LOCAL_TIME_VIEWS[:3]:
        assert client.get(path, headers={**headers, **NO_CACHE}).status_code == 200
        Session.remove()
        with counted_queries(app) as statements:
            assert client.get(path, headers={**headers, **NO_CACHE}).status_code == 200
        assert not [statement for statement in statements if "companies" in statement], path


def test_cached_entries_keep_the_shape_of_the_release_before():
    """The timezone sits beside the principal's fields in a stored entry: a worker of the
    release before still reads what this one writes, and this one reads an entry of
    theirs as a principal whose timezone is not known (the views then read it)."""
    import dataclasses
    import json

    from gateway_app.context import Principal
    from gateway_app.identity.principal_cache import decoded_entry, encoded_entry
    principal = Principal(kind="api_key", company_id=1, tier="free", api_key_id=3, scopes=("read",),
                          credential_id="gw_abc", timezone="Asia/Tokyo")
    stored = json.loads(encoded_entry(principal, [2, None]))
    assert set(stored["principal"]) == {field.name for field in dataclasses.fields(Principal)} - {"timezone"}
    assert decoded_entry(json.dumps(stored)) == (principal, [2, None])
    del stored["timezone"]
    assert decoded_entry(json.dumps(stored)) == (dataclasses.replace(principal, timezone=None), [2, None])


def test_admin_tier_change_is_validated_and_audited(client, tenant):
    from gateway_app.models import AuditLog
    company_path = f"/gateway/admin/companies/{tenant.company['id']}"
    assert client.patch(company_path, json={"tier": "pro"}).status_code == 401
    assert client.patch(company_path, headers=ADMIN, json={"tier": "platinum"}).status_code == 422
    assert client.patch("/gateway/admin/companies/999999", headers=ADMIN, json={"tier": "pro"}).status_code == 404
    assert client.patch(company_path, headers=ADMIN, json={"tier": "pro"}).status_code == 200
    row = Session.query(AuditLog).filter_by(action="admin.company.tier_changed").one()
    assert row.company_id == tenant.company["id"] and row.details == {"previous": "free", "tier": "pro"}


def test_credentials_still_work_while_redis_is_down(database_url, private_redis):
    app = build_app(database_url, private_redis.url)
    try:
        with app.app_context():
            client = app.test_client()
            tenant = sign_up(client)
            assert tenant.get(NO_DB_VIEW).status_code == 200
            private_redis.stop()
            assert tenant.get(NO_DB_VIEW).status_code == 200  # resolved from the database
            assert tenant.get("/api/v1/settings/profile").status_code == 200
            login = client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD})
            assert login.status_code == 503
            assert login.headers["Content-Type"] == "application/problem+json"
            Session.remove()
    finally:
        app.extensions["gateway_engine"].dispose()
