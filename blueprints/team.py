"""Team service: members, invitations, roles, and the permission matrix."""
import secrets

from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from blueprints.auth import invite_token_digest, normalise_email
from blueprints.common import (PageArgs, current_company_id, current_principal, get_owned_or_404,
                               page_newest_first, page_schema)
from gateway_app.audit import audit
from gateway_app.db import Session
from gateway_app.errors import GatewayProblem
from gateway_app.events import emit
from gateway_app.extensions import gateway_state
from gateway_app.identity.permissions import (DESCRIPTIONS, PERMISSIONS, READ_PERMISSIONS, ROLES,
                                              USER_ONLY_PERMISSIONS, permissions_of)
from gateway_app.models import User
from gateway_app.notifications import queue_email
from gateway_app.pipeline.declarations import gateway_policy

blp = Blueprint("team", __name__, url_prefix="/api/v1/team", description="Team service")


class MemberOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    status = fields.String()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class InviteSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(load_default="member", validate=validate.OneOf(ROLES))


class RoleChange(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class RoleOut(Schema):
    role = fields.String()
    permissions = fields.List(fields.String())


class PermissionOut(Schema):
    permission = fields.String()
    description = fields.String()
    roles = fields.List(fields.String())
    api_key_scope = fields.String(allow_none=True,
                                  metadata={"description": "scope an API key needs; null: users only"})


MemberPage = page_schema(MemberOut, "MemberPage")
RoleList = page_schema(RoleOut, "RoleList")
PermissionList = page_schema(PermissionOut, "PermissionList")


def require_owner_for(action):
    """Owners are the only ones who can make, unmake or remove owners."""
    if current_principal().role != "owner":
        raise GatewayProblem(403, "Forbidden", f"Only an owner can {action}.", permission="team:manage")


def ensure_another_owner(member):
    """Refuse to leave the company without an active owner (rows locked against a race)."""
    others = Session.scalars(select(User.id).where(
        User.company_id == member.company_id, User.role == "owner", User.status == "active",
        User.id != member.id).with_for_update()).all()
    if not others:
        abort(409, message="The company's last owner cannot be removed or demoted.")


def member_changed(member_id):
    gateway_state().components["identity"].user_changed(member_id)


@blp.route("/members", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, MemberPage)
@gateway_policy(permission="team:read")
def list_members(args):
    """The company's members, invited ones included, newest first."""
    query = select(User).where(User.company_id == current_company_id())
    return page_newest_first(query, User.created_at, User.id, args)


@blp.route("/members", methods=["POST"])
@blp.arguments(InviteSchema)
@blp.response(201, MemberOut)
@gateway_policy(permission="team:manage", resource="team_invites")
def invite_member(data):
    """Invite someone: a pending member is created and the invitation email is queued
    in the same transaction."""
    if data["role"] == "owner":
        require_owner_for("invite an owner")
    email = normalise_email(data["email"])
    if Session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        abort(409, message="An account with this email already exists.")
    token = secrets.token_urlsafe(32)
    member = User(company_id=current_company_id(), email=email, name=data["name"].strip(),
                  role=data["role"], status="invited", invite_token_hash=invite_token_digest(token))
    Session.add(member)
    Session.flush()
    queue_email(Session, member.company_id, to=email, subject="You are invited to your team's workspace",
                text=(f"{member.name}, you have been invited as {member.role}. Accept with "
                      f"POST /api/v1/auth/accept-invite using this token: {token}"),
                category="team_invite")
    audit(Session, "team.member_invited", "user", member.id, role=member.role)
    emit(Session, "settings.changed", member.company_id, user_id=current_principal().user_id)
    Session.commit()
    return member


@blp.route("/members/<int:member_id>", methods=["PATCH"])
@blp.arguments(RoleChange)
@blp.response(200, MemberOut)
@gateway_policy(permission="team:manage")
def change_role(data, member_id):
    """Change a member's role; it applies to the member's next request."""
    member = get_owned_or_404(User, member_id)
    new_role = data["role"]
    if new_role == member.role:
        return member
    if "owner" in (member.role, new_role):
        require_owner_for("grant or take the owner role")
    if member.role == "owner":
        ensure_another_owner(member)
    audit(Session, "team.role_changed", "user", member.id, previous=member.role, role=new_role)
    member.role = new_role
    emit(Session, "settings.changed", member.company_id, user_id=current_principal().user_id)
    Session.commit()
    member_changed(member.id)
    return member


@blp.route("/members/<int:member_id>", methods=["DELETE"])
@blp.response(204)
@gateway_policy(permission="team:manage")
def remove_member(member_id):
    """Remove a member; their tokens and sessions stop working at once."""
    member = get_owned_or_404(User, member_id)
    if member.role == "owner":
        require_owner_for("remove an owner")
        ensure_another_owner(member)
    audit(Session, "team.member_removed", "user", member.id, email=member.email, role=member.role)
    emit(Session, "settings.changed", member.company_id, user_id=current_principal().user_id)
    Session.delete(member)
    Session.commit()
    member_changed(member_id)
    return ""


@blp.route("/roles", methods=["GET"])
@blp.response(200, RoleList)
@gateway_policy(permission="team:read")
def list_roles():
    """Every role with its permissions."""
    return {"data": [{"role": role, "permissions": permissions_of(role)} for role in ROLES],
            "next_cursor": None}


def api_key_scope(permission):
    if permission in USER_ONLY_PERMISSIONS:
        return None
    return "read" if permission in READ_PERMISSIONS else "write"


@blp.route("/permissions", methods=["GET"])
@blp.response(200, PermissionList)
@gateway_policy(permission="team:read")
def list_permissions():
    """The permission matrix: which roles, and which API-key scope, grant each permission."""
    return {"data": [{"permission": permission, "description": DESCRIPTIONS[permission],
                      "roles": [role for role in ROLES if role in roles],
                      "api_key_scope": api_key_scope(permission)}
                     for permission, roles in PERMISSIONS.items()],
            "next_cursor": None}
