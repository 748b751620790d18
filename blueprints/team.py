"""Team service: members, invitations, roles, and the permission matrix."""
from contextlib import contextmanager

from flask_smorest import abort
from marshmallow import Schema, fields, validate

from blueprints.common import (PageArgs, current_company_id, current_principal, get_owned_or_404,
                               page_fetched_newest_first, page_schema)
from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import GatewayProblem
from gateway_app.identity.permissions import (DESCRIPTIONS, PERMISSIONS, READ_PERMISSIONS, ROLES,
                                              USER_ONLY_PERMISSIONS, permissions_of)
from gateway_app.merge_patch import patched
from gateway_app.models import User
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import team
from gateway_app.services.serialization import Serializer, check_rows_dump_as_is, json_response

blp = GatewayBlueprint("team", __name__, url_prefix="/api/v1/team", description="Team service")


class MemberOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    status = fields.String(validate=validate.OneOf(["invited", "active"]))
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class InviteSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(load_default="member", validate=validate.OneOf(ROLES))


class RoleChange(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class RoleOut(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(sorted(PERMISSIONS))))


class PermissionOut(Schema):
    permission = fields.String(validate=validate.OneOf(sorted(PERMISSIONS)))
    description = fields.String()
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)))
    api_key_scope = fields.String(allow_none=True, validate=validate.OneOf(["read", "write"]),
                                  metadata={"description": "scope an API key needs; null: users only"})


MemberPage = page_schema(MemberOut, "MemberPage")
RoleList = page_schema(RoleOut, "RoleList")
PermissionList = page_schema(PermissionOut, "PermissionList")
MEMBER_PAGE = Serializer(MemberPage)
# the list's rows are its items as they are
check_rows_dump_as_is(MemberOut, team.MEMBER_COLUMNS)


@contextmanager
def refusals_as_problems():
    """The service's refusals as the contract answers them."""
    try:
        yield
    except team.OwnerOnly as refused:
        raise GatewayProblem(403, "Forbidden", str(refused), permission="team:manage") from None
    except (team.LastOwner, team.EmailTaken) as refused:
        abort(409, message=str(refused))


@blp.route("/members", methods=["GET"])
@blp.arguments(PageArgs(), location="query")
@blp.response(200, MemberPage)
@gateway_policy(permission="team:read")
def list_members(args):
    """The company's members, invited ones included, newest first."""
    company_id = current_company_id()
    page = page_fetched_newest_first(lambda after, limit: team.members_page_rows(company_id, after, limit),
                                     team.USERS.created_at, team.USERS.id, args)
    return json_response(page, MEMBER_PAGE.exact_only)


@blp.route("/members", methods=["POST"])
@blp.arguments(InviteSchema)
@blp.response(201, MemberOut)
@blp.alt_response(409, description="A user with this e-mail exists.")
@gateway_policy(permission="team:manage", resource="team_invites")
def invite_member(data):
    """Invite someone: a pending member is created and the invitation email is queued
    in the same transaction."""
    with refusals_as_problems():
        return team.invite(current_principal(), data["email"], data["name"], data["role"])


@blp.route("/members/<int:member_id>", methods=["PATCH"])
@blp.doc(operationId="changeMemberRole")
@blp.arguments(RoleChange)
@blp.response(200, MemberOut)
@blp.alt_response(409, description="The company would be left without an owner.")
@gateway_policy(permission="team:manage")
def change_role(data, member_id):
    """Change a member's role; it applies to the member's next request."""
    member = get_owned_or_404(User, member_id)
    with refusals_as_problems():
        return team.change_role(current_principal(), member, patched({"role": member.role}, data)["role"])


@blp.route("/members/<int:member_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(409, description="The company would be left without an owner.")
@gateway_policy(permission="team:manage")
def remove_member(member_id):
    """Remove a member; their tokens and sessions stop working at once."""
    member = get_owned_or_404(User, member_id)
    with refusals_as_problems():
        team.remove(current_principal(), member)
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
