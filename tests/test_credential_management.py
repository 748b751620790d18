"""Team and credential management (members, roles, API keys) needs a user's credential:
no API key, whatever its scopes, invites, changes or removes members or manages keys."""
import pytest
from sqlalchemy import func, select

from gateway_app.db import Session
from gateway_app.models import ApiKey, User
from tests.conftest import PASSWORD, add_member, api_key_headers

MEMBERS = "/api/v1/team/members"
KEYS = "/api/v1/settings/api-keys"


def assert_user_only(response, permission):
    assert response.status_code == 403, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["permission"] == permission
    assert "bearer token or session" in body["detail"]
    assert body["request_id"]


def members_count(company_id):
    return Session.scalar(select(func.count()).select_from(User).where(User.company_id == company_id))


@pytest.mark.parametrize("scopes", [["write"], ["read", "write"], ["read"]])
def test_an_api_key_cannot_invite_change_or_remove_members(client, tenant, scopes):
    key = api_key_headers(tenant, scopes)
    member = add_member(tenant, "viewer")
    before = members_count(tenant.company["id"])
    assert_user_only(client.post(MEMBERS, headers=key,
                                 json={"email": "evil@example.com", "name": "E", "role": "admin"}),
                     "team:manage")
    assert members_count(tenant.company["id"]) == before
    assert_user_only(client.patch(f"{MEMBERS}/{member.user['id']}", headers=key, json={"role": "admin"}),
                     "team:manage")
    assert_user_only(client.delete(f"{MEMBERS}/{member.user['id']}", headers=key), "team:manage")
    assert Session.get(User, member.user["id"]).role == "viewer"
    # reading the team stays open to keys (the write scope includes read)
    assert client.get(MEMBERS, headers=key).status_code == 200


def test_an_api_key_cannot_list_create_or_revoke_keys(client, tenant):
    key = api_key_headers(tenant, ["read", "write"])
    own_id = Session.scalar(select(ApiKey.id).where(ApiKey.company_id == tenant.company["id"]))
    assert_user_only(client.get(KEYS, headers=key), "api_keys:manage")
    assert_user_only(client.post(KEYS, headers=key, json={"name": "more", "scopes": ["write"]}),
                     "api_keys:manage")
    assert_user_only(client.delete(f"{KEYS}/{own_id}", headers=key), "api_keys:manage")
    assert Session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_users_with_the_permission_still_manage_the_team(client, tenant):
    # bearer token
    invited = tenant.post(MEMBERS, json={"email": "new@example.com", "name": "N", "role": "member"})
    assert invited.status_code == 201
    assert tenant.patch(f"{MEMBERS}/{invited.get_json()['id']}", json={"role": "viewer"}).status_code == 200
    # session (cookie and CSRF token)
    login = client.post("/api/v1/auth/login", json={"email": tenant.user["email"], "password": PASSWORD})
    csrf = {"X-CSRF-Token": login.get_json()["csrf_token"]}
    assert client.delete(f"{MEMBERS}/{invited.get_json()['id']}", headers=csrf).status_code == 204
    assert client.post(KEYS, headers=csrf, json={"name": "k", "scopes": ["read"]}).status_code == 201


def test_a_member_without_the_permission_is_refused_by_role(tenant):
    member = add_member(tenant, "member")
    refused = member.post(MEMBERS, json={"email": "x@example.com", "name": "X"})
    assert refused.status_code == 403 and refused.get_json()["permission"] == "team:manage"
    assert "role 'member'" in refused.get_json()["detail"]


def test_the_matrix_and_the_openapi_document_say_keys_never_manage_credentials(client, tenant):
    matrix = {p["permission"]: p for p in tenant.get("/api/v1/team/permissions").get_json()["data"]}
    assert matrix["team:manage"]["api_key_scope"] is None
    assert matrix["api_keys:manage"]["api_key_scope"] is None
    assert matrix["team:read"]["api_key_scope"] == "read"
    paths = client.get("/openapi.json").get_json()["paths"]
    for path, method in [(MEMBERS, "post"), (MEMBERS + "/{member_id}", "patch"),
                         (MEMBERS + "/{member_id}", "delete"), (KEYS, "get"), (KEYS, "post"),
                         (KEYS + "/{key_id}", "delete"), ("/api/v1/settings/profile", "patch")]:
        # a user's token, or a session (whose writes also send X-CSRF-Token); never a key
        schemes = [sorted(requirement) for requirement in paths[path][method]["security"]]
        session = ["session"] if method == "get" else ["csrfToken", "session"]
        assert schemes == [["bearerToken"], session], (path, method)
    assert {"apiKey": ["read"]} in paths[MEMBERS]["get"]["security"]
