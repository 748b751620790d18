"""Team service: members, invitations (with their email), roles, the last-owner rule."""
import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.models import AuditLog, OutboxMessage, User
from tests.conftest import PASSWORD, Tenant

MEMBERS = "/api/v1/team/members"


def invite(tenant, role="member", email=None):
    email = email or f"{role}-{len(tenant.get(MEMBERS).get_json()['data'])}-{tenant.company['id']}@example.com"
    response = tenant.post(MEMBERS, json={"email": email, "name": role.title(), "role": role})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def invitation_token(email):
    message = Session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sendgrid.email")).all()
    text = next(m.payload["text"] for m in message if m.payload["to"] == [email])
    return text.rsplit(" ", 1)[-1]


def join(client, member):
    """Accept the invitation and return the new member as a Tenant-like caller."""
    token = invitation_token(member["email"])
    accepted = client.post("/api/v1/auth/accept-invite", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.get_json()
    pair = client.post("/api/v1/auth/token", json={"email": member["email"], "password": PASSWORD})
    assert pair.status_code == 200
    return Tenant(client, None, member, pair.get_json()["access_token"])


def test_invite_creates_a_pending_member_and_queues_the_email(client, tenant):
    member = invite(tenant, "member", "new.person@example.com")
    assert member["status"] == "invited" and member["role"] == "member"
    row = Session.get(User, member["id"])
    assert row.company_id == tenant.company["id"] and row.password_hash is None
    email = Session.scalars(select(OutboxMessage)).one()
    assert email.payload["to"] == ["new.person@example.com"] and email.company_id == tenant.company["id"]
    assert Session.scalars(select(AuditLog.action)).all() == ["team.member_invited"]
    # the invited member cannot log in before accepting
    assert client.post("/api/v1/auth/token", json={"email": "new.person@example.com",
                                                   "password": PASSWORD}).status_code == 401
    listed = tenant.get(MEMBERS).get_json()
    assert {m["email"] for m in listed["data"]} == {tenant.user["email"], "new.person@example.com"}
    assert listed["next_cursor"] is None


def test_invitation_is_accepted_once(client, tenant):
    member = invite(tenant)
    joined = join(client, member)
    assert joined.get("/api/v1/settings/profile").get_json()["role"] == "member"
    again = client.post("/api/v1/auth/accept-invite",
                        json={"token": invitation_token(member["email"]), "password": PASSWORD})
    assert again.status_code == 400


def test_invite_validation_and_duplicates(tenant):
    bad = tenant.post(MEMBERS, json={"email": "not-an-email", "name": "", "role": "boss"})
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) == {"email", "name", "role"}
    invite(tenant, email="dup@example.com")
    assert tenant.post(MEMBERS, json={"email": "DUP@example.com", "name": "x"}).status_code == 409


def test_role_change_applies_to_the_next_request(client, tenant):
    member = join(client, invite(tenant, "viewer"))
    assert member.post(MEMBERS, json={"email": "a@example.com", "name": "A"}).status_code == 403
    assert member.get(MEMBERS).status_code == 200  # warm cache as viewer
    changed = tenant.patch(f"{MEMBERS}/{member.user['id']}", json={"role": "admin"})
    assert changed.status_code == 200 and changed.get_json()["role"] == "admin"
    assert member.post(MEMBERS, json={"email": "a@example.com", "name": "A"}).status_code == 201
    audit = Session.scalars(select(AuditLog).where(AuditLog.action == "team.role_changed")).one()
    assert audit.details == {"previous": "viewer", "role": "admin"}


def test_a_demotion_applies_to_the_next_request(client, tenant):
    member = join(client, invite(tenant, "admin"))
    assert member.post(MEMBERS, json={"email": "b@example.com", "name": "B"}).status_code == 201
    assert tenant.patch(f"{MEMBERS}/{member.user['id']}", json={"role": "viewer"}).status_code == 200
    refused = member.post(MEMBERS, json={"email": "c@example.com", "name": "C"})
    assert refused.status_code == 403
    assert "'viewer'" in refused.get_json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_the_last_owner_cannot_be_demoted_or_removed(client, tenant):
    owner_id = tenant.user["id"]
    assert tenant.patch(f"{MEMBERS}/{owner_id}", json={"role": "admin"}).status_code == 409
    assert tenant.delete(f"{MEMBERS}/{owner_id}").status_code == 409
    second = join(client, invite(tenant, "owner"))
    assert tenant.patch(f"{MEMBERS}/{owner_id}", json={"role": "admin"}).status_code == 200
    # now the second owner is the last one
    assert second.delete(f"{MEMBERS}/{second.user['id']}").status_code == 409


def test_admins_cannot_touch_owners(client, tenant):
    admin = join(client, invite(tenant, "admin"))
    assert admin.patch(f"{MEMBERS}/{tenant.user['id']}", json={"role": "viewer"}).status_code == 403
    assert admin.delete(f"{MEMBERS}/{tenant.user['id']}").status_code == 403
    assert admin.post(MEMBERS, json={"email": "o@example.com", "name": "O", "role": "owner"}).status_code == 403
    assert admin.patch(f"{MEMBERS}/{admin.user['id']}", json={"role": "owner"}).status_code == 403


def test_removed_member_loses_access_at_once(client, tenant):
    member = join(client, invite(tenant, "member"))
    assert member.get(MEMBERS).status_code == 200
    assert tenant.delete(f"{MEMBERS}/{member.user['id']}").status_code == 204
    assert member.get(MEMBERS).status_code == 401
    assert tenant.delete(f"{MEMBERS}/{member.user['id']}").status_code == 404


def test_roles_and_permissions_expose_the_matrix(tenant):
    roles = {r["role"]: r["permissions"] for r in tenant.get("/api/v1/team/roles").get_json()["data"]}
    assert set(roles) == {"owner", "admin", "member", "viewer"}
    assert "team:manage" in roles["admin"] and "team:manage" not in roles["viewer"]
    matrix = {p["permission"]: p for p in tenant.get("/api/v1/team/permissions").get_json()["data"]}
    assert matrix["settings:write"]["roles"] == ["owner", "admin"]
    assert matrix["calls:read"]["api_key_scope"] == "read"
    assert matrix["customers:write"]["api_key_scope"] == "write"
    assert matrix["api_keys:manage"]["api_key_scope"] is None


def test_an_expired_invitation_cannot_be_accepted(client, tenant):
    import datetime as dt
    member = invite(tenant)
    row = Session.get(User, member["id"])
    row.created_at = row.created_at - dt.timedelta(days=8)
    Session.commit()
    expired = client.post("/api/v1/auth/accept-invite",
                          json={"token": invitation_token(member["email"]), "password": PASSWORD})
    assert expired.status_code == 400 and "expired" in expired.get_json()["detail"]
