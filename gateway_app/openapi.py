"""The OpenAPI document says which credential each operation takes.

flask-smorest documents schemas but knows nothing of the pipeline's declarations, so an
apispec plugin gives each operation, as its path is added to the document, the security
its ``gateway_policy`` implies: none for public routes, the admin token for the operator
API, a user's token or session for the permissions no API key holds, and any of the three
client credentials (docs/contract.md section 2) otherwise.
"""
from apispec import BasePlugin

from .identity.permissions import USER_ONLY_PERMISSIONS
from .pipeline import route_policy_for

SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "session": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                "description": "State-changing requests also send X-CSRF-Token."},
    "adminToken": {"type": "http", "scheme": "bearer",
                   "description": "GATEWAY_ADMIN_TOKEN, for /gateway/admin/*"},
}
CLIENT_CREDENTIALS = [{"apiKey": []}, {"bearerToken": []}, {"session": []}]
# permissions no API key holds (identity/permissions.py): only a user's credentials
USER_CREDENTIALS = [{"bearerToken": []}, {"session": []}]
DOCUMENTED_METHODS = ("get", "put", "post", "patch", "delete")


def security_for(route_policy):
    if route_policy.get("admin"):
        return [{"adminToken": []}]
    if route_policy.get("public"):
        return []
    if route_policy.get("permission") in USER_ONLY_PERMISSIONS:
        return USER_CREDENTIALS
    return CLIENT_CREDENTIALS


class SecurityFromPolicy(BasePlugin):
    """apispec plugin (flask-smorest's ``extra_plugins``): the security schemes, and each
    operation's security from its view's declarations (flask-smorest passes the rule)."""

    def __init__(self, app):
        self.app = app

    def init_spec(self, spec):
        super().init_spec(spec)
        for name, scheme in SCHEMES.items():
            spec.components.security_scheme(name, scheme)

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        security = security_for(route_policy_for(self.app, rule.endpoint))
        for method in DOCUMENTED_METHODS:
            if method in operations:
                operations[method]["security"] = security
