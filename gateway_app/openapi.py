"""The OpenAPI document says which credential each operation takes.

flask-smorest documents schemas but knows nothing of the pipeline's declarations, so
after the blueprints are registered each operation gets the security its
``gateway_policy`` implies: none for public routes, the admin token for the operator
API, and any of the three client credentials (docs/contract.md section 2) otherwise.
"""
import re

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
WERKZEUG_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def security_for(route_policy):
    if route_policy.get("admin"):
        return [{"adminToken": []}]
    if route_policy.get("public"):
        return []
    return CLIENT_CREDENTIALS


def document_security(app, api):
    for name, scheme in SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    # apispec keeps registered paths in ``_paths``; it has no public way to amend them
    paths = api.spec._paths
    for rule in app.url_map.iter_rules():
        operations = paths.get(WERKZEUG_PARAMETER.sub(r"{\1}", rule.rule), {})
        security = security_for(route_policy_for(app, rule.endpoint))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() in operations:
                operations[method.lower()]["security"] = security
