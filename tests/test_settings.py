"""Settings service: company settings and provider links, profile and password, API keys."""
import pytest
import responses
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.events import subscribe
from gateway_app.models import AuditLog, Company
from tests.conftest import PASSWORD, add_member, sign_up

COMPANY = "/api/v1/settings/company"
PROFILE = "/api/v1/settings/profile"
KEYS = "/api/v1/settings/api-keys"


def heard_events(app):
    heard = []
    subscribe(app, lambda event: heard.append((event.name, event.company_id)))
    return heard


def test_company_settings_round_trip(app, tenant):
    heard = heard_events(app)
    before = tenant.get(COMPANY).get_json()
    assert before["tier"] == "free" and before["timezone"] == "UTC"
    assert before["integrations"] == {"retell_agent_id": None, "calcom_event_type_id": None,
                                      "stripe_customer_id": None}
    change = {"name": "Dental Co", "timezone": "Europe/Berlin",
              "business_hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
              "integrations": {"retell_agent_id": "agent_1", "calcom_event_type_id": "41"}}
    response = tenant.patch(COMPANY, json=change)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["name"] == "Dental Co" and body["timezone"] == "Europe/Berlin"
    assert body["integrations"]["retell_agent_id"] == "agent_1"
    assert tenant.get(COMPANY).get_json() == body
    company = Session.get(Company, tenant.company["id"])
    Session.refresh(company)
    assert (company.retell_agent_id, company.calcom_event_type_id) == ("agent_1", "41")
    assert heard == [("settings.changed", tenant.company["id"])]
    assert Session.scalars(select(AuditLog.action)).all() == ["settings.company.updated"]
    # unlinking one account keeps the others
    tenant.patch(COMPANY, json={"integrations": {"retell_agent_id": None}})
    Session.refresh(company)
    assert company.retell_agent_id is None and company.calcom_event_type_id == "41"


def test_company_settings_validation(tenant):
    response = tenant.patch(COMPANY, json={"timezone": "Mars/Olympus",
                                           "business_hours": {"mon": [["17:00", "09:00"]], "xyz": []},
                                           "integrations": {"unknown": "x"}})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"timezone", "business_hours", "integrations"}


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_a_provider_account_links_one_company_only(tenant, tenant_factory):
    other = tenant_factory()
    assert tenant.patch(COMPANY, json={"integrations": {"calcom_event_type_id": "42"}}).status_code == 200
    conflict = other.patch(COMPANY, json={"integrations": {"calcom_event_type_id": "42"}})
    assert conflict.status_code == 409 and "calcom_event_type_id" in conflict.get_json()["detail"]


def test_viewer_reads_but_cannot_change_settings(client, tenant):
    viewer = add_member(tenant, "viewer")
    assert viewer.get(COMPANY).status_code == 200
    denied = viewer.patch(COMPANY, json={"name": "Hijacked"})
    assert denied.status_code == 403 and denied.get_json()["permission"] == "settings:write"
    assert viewer.get(KEYS).status_code == 403
    assert viewer.patch(PROFILE, json={"name": "Viewer Renamed"}).status_code == 200


def test_password_change_needs_the_current_password_and_revokes_credentials(client, tenant):
    pair = client.post("/api/v1/auth/token", json={"email": tenant.user["email"], "password": PASSWORD}).get_json()
    wrong = tenant.patch(PROFILE, json={"current_password": "not-it-at-all", "new_password": "a brand new password"})
    assert wrong.status_code == 422 and "current_password" in wrong.get_json()["errors"]
    assert tenant.patch(PROFILE, json={"new_password": "a brand new password"}).status_code == 422
    changed = tenant.patch(PROFILE, json={"current_password": PASSWORD, "new_password": "a brand new password"})
    assert changed.status_code == 200
    assert tenant.get(PROFILE).status_code == 401
    assert client.get(PROFILE, headers={"Authorization": f"Bearer {pair['access_token']}"}).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"email": tenant.user["email"],
                                                   "password": "a brand new password"}).status_code == 200
    assert "profile.password_changed" in Session.scalars(select(AuditLog.action)).all()


def test_api_keys_are_listed_without_secrets_and_revoked(tenant):
    created = tenant.post(KEYS, json={"name": "CRM sync", "scopes": ["write"]})
    assert created.status_code == 201
    body = created.get_json()
    assert body["scopes"] == ["read", "write"] and body["key"].startswith("gwk_" + body["prefix"])
    listed = tenant.get(KEYS).get_json()["data"]
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    assert tenant.delete(f"{KEYS}/{body['id']}").status_code == 204
    assert tenant.get(KEYS).get_json()["data"][0]["revoked_at"] is not None
    assert tenant.delete(f"{KEYS}/{body['id']}").status_code == 204  # idempotent
    assert tenant.delete(f"{KEYS}/999999").status_code == 404
    actions = Session.scalars(select(AuditLog.action)).all()
    assert actions == ["api_key.created", "api_key.revoked"]


def test_api_key_creation_validates_scopes(tenant):
    response = tenant.post(KEYS, json={"name": "x", "scopes": ["admin"]})
    assert response.status_code == 422 and "scopes" in response.get_json()["errors"]
    assert tenant.post(KEYS, json={"name": "x", "scopes": []}).status_code == 422


def test_views_declare_their_cache_and_resource_layers(app):
    policy = lambda endpoint: app.view_functions[endpoint].gateway_policy  # noqa: E731
    assert policy("settings.get_company")["cache"] == "company_settings"
    assert policy("settings.get_profile") == {"permission": "profile:read", "cache": "settings",
                                              "cache_per_user": True}
    assert policy("settings.create_api_key")["resource"] == "api_keys"
    assert policy("team.invite_member")["resource"] == "team_invites"


STRIPE_CUSTOMERS = "https://api.stripe.com/v1/customers"


@pytest.fixture
def stripe_tenant(provider_client):
    return sign_up(provider_client)


def stripe_customer(customer_id, company_id, deleted=False):
    return {"id": customer_id, "object": "customer", "email": "billing@example.com",
            "metadata": {"gateway_company_id": str(company_id)} if company_id else {},
            **({"deleted": True} if deleted else {})}


def linked_stripe_customer(tenant):
    Session.expire_all()
    return Session.get(Company, tenant.company["id"]).stripe_customer_id


def test_a_stripe_customer_whose_metadata_names_the_company_is_linked(stripe_tenant):
    with responses.RequestsMock() as stripe:
        stripe.get(f"{STRIPE_CUSTOMERS}/cus_Own1", json=stripe_customer("cus_Own1", stripe_tenant.company["id"]))
        linked = stripe_tenant.patch(COMPANY, json={"integrations": {"stripe_customer_id": "cus_Own1"}})
    assert linked.status_code == 200, linked.get_json()
    assert linked_stripe_customer(stripe_tenant) == "cus_Own1"


@pytest.mark.parametrize("answer, reason", [
    ({"json": stripe_customer("cus_Else1", 999999)}, "metadata gateway_company_id must be"),
    ({"json": stripe_customer("cus_Else1", None)}, "metadata gateway_company_id must be"),
    ({"json": stripe_customer("cus_Else1", None, deleted=True)}, "deleted"),
    ({"status": 404, "json": {"error": {"type": "invalid_request_error", "code": "resource_missing"}}},
     "Stripe has no customer"),
])
def test_a_stripe_customer_that_is_not_the_companys_is_refused(stripe_tenant, answer, reason):
    with responses.RequestsMock() as stripe:
        stripe.get(f"{STRIPE_CUSTOMERS}/cus_Else1", **answer)
        refused = stripe_tenant.patch(COMPANY, json={"integrations": {"stripe_customer_id": "cus_Else1"}})
    assert refused.status_code == 422
    assert reason in refused.get_json()["errors"]["integrations"]["stripe_customer_id"][0]
    assert linked_stripe_customer(stripe_tenant) is None


def test_a_stripe_customer_cannot_be_linked_while_stripe_cannot_tell(stripe_tenant, tenant):
    with responses.RequestsMock() as stripe:
        stripe.get(f"{STRIPE_CUSTOMERS}/cus_Own1", status=503)
        down = stripe_tenant.patch(COMPANY, json={"integrations": {"stripe_customer_id": "cus_Own1"}})
    assert down.status_code == 503 and down.get_json()["service"] == "stripe"
    assert linked_stripe_customer(stripe_tenant) is None
    # without STRIPE_API_KEY nothing can be checked, so nothing is linked
    unconfigured = tenant.patch(COMPANY, json={"integrations": {"stripe_customer_id": "cus_Own1"}})
    assert unconfigured.status_code == 503
