"""The OpenAPI document says which credential each operation takes.

flask-smorest documents schemas but knows nothing of the pipeline's declarations, so an
apispec plugin gives each operation, as its path is added to the document, the security
its ``gateway_policy`` implies: none for public routes, the admin token for the operator
API, a user's token or session for the permissions no API key holds, and any of the three
client credentials (docs/contract.md section 2) otherwise.
"""
import copy
import importlib.resources

from apispec import BasePlugin

from . import merge_patch
from .identity.permissions import USER_ONLY_PERMISSIONS
from .pipeline import route_policy_for

# /docs is self-contained: Swagger UI's files come from the flask-swagger-ui package
# (its dist folder, Swagger UI's own build) and are served by the gateway at this path
SWAGGER_UI_ASSETS_PATH = "/docs/assets/"
SWAGGER_UI_DIST = importlib.resources.files("flask_swagger_ui") / "dist"

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
MERGE_PATCH_NOTE = ("The body is a JSON merge patch (RFC 7396), sent as application/merge-patch+json "
                    "or application/json: null deletes a member, objects merge member by member, "
                    "arrays and other values replace.")


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
        if "patch" in operations:
            document_merge_patch(operations["patch"])


def document_merge_patch(operation):
    """Every PATCH body is a merge patch (gateway_app/merge_patch.py): say so, and accept
    its media type beside application/json, which webargs parses alike (any +json)."""
    body = operation.get("requestBody")
    if not body or "application/json" not in body.get("content", {}):
        return
    content = body["content"]
    content.setdefault(merge_patch.MEDIA_TYPE, copy.deepcopy(content["application/json"]))
    body["description"] = (body.get("description", "") + " " + MERGE_PATCH_NOTE).strip()
