"""Stage 2: authorization. Role permissions and API-key scopes, declared per view.

Tenant scoping is not decided here: the company always comes from the principal,
and services query within it, so another company's resource is simply not found.
"""
from ..errors import GatewayProblem
from ..identity.permissions import USER_ONLY_PERMISSIONS, role_allows, scopes_allow
from .base import Stage


class AuthorizationStage(Stage):
    name = "authorization"

    def before(self, ctx, request):
        permission = ctx.route_policy.get("permission")
        principal = ctx.principal
        if permission is None or principal is None:
            return None
        if principal.kind == "api_key":
            allowed = scopes_allow(principal.scopes, permission)
            reason = (f"{permission} needs a user's credential (bearer token or session)."
                      if permission in USER_ONLY_PERMISSIONS
                      else f"This API key's scopes do not include {permission}.")
        else:
            allowed = role_allows(principal.role, permission)
            reason = f"The role '{principal.role}' does not have the permission {permission}."
        if not allowed:
            raise GatewayProblem(403, "Forbidden", reason, permission=permission)
        return None
