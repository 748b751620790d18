"""Stage 1: authentication. Resolves one credential into a Principal.

Checked in the contract's order: API key, bearer token, session. A request that
carries a bad credential is rejected with 401, never treated as anonymous.
"""
import hmac

from flask import current_app

from ..context import Principal
from ..db import Session
from ..errors import GatewayProblem
from ..identity.tokens import TokenError, decode_access_token
from ..models import User
from .base import Stage


def unauthorized(detail):
    return GatewayProblem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


class AuthenticationStage(Stage):
    name = "authentication"
    section = "authentication"

    def before(self, ctx, request):
        if ctx.route_policy.get("admin"):
            self.check_admin_token(request)
            return None
        ctx.principal = self.resolve(request)
        if ctx.principal is None and not ctx.route_policy.get("public") and request.endpoint:
            raise unauthorized("This endpoint needs an API key, a bearer token or a session.")
        return None

    def check_admin_token(self, request):
        expected = current_app.config.get("GATEWAY_ADMIN_TOKEN")
        if not expected:
            raise GatewayProblem(404, "Not Found", "The admin API is disabled (GATEWAY_ADMIN_TOKEN unset).")
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.strip().encode(), expected.encode()):
            raise unauthorized("The admin API needs 'Authorization: Bearer <GATEWAY_ADMIN_TOKEN>'.")

    def resolve(self, request):
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("Authorization must be 'Bearer <access_token>'.")
            return self.principal_from_token(token.strip())
        return None

    def principal_from_token(self, token):
        try:
            claims = decode_access_token(current_app.config["SECRET_KEY"], self.config, token)
        except TokenError:
            raise unauthorized("The access token is invalid or expired.") from None
        user = Session.get(User, int(claims["sub"]))
        if (user is None or user.status != "active" or user.company_id != claims.get("cid")
                or user.credential_version != claims.get("cv")):
            raise unauthorized("The access token is no longer valid.")
        return Principal(kind="token", company_id=user.company_id, tier=user.company.tier,
                         user_id=user.id, role=user.role, credential_id=claims["jti"])
