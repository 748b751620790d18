"""The OpenAPI document, from the declarations the pipeline enforces.

flask-smorest documents the views' schemas; it knows nothing of the pipeline. Everything
else a client meets comes from the same declarations the stages read, so the document
cannot say one thing while the gateway does another:

- security: none for public routes, the admin token for the operator API, a user's
  token or session for the permissions no API key holds, otherwise an API key of the
  scope the permission needs (identity/permissions.py) too; a session's writes also
  send X-CSRF-Token (pipeline/authentication.py);
- the error statuses each operation can answer (``error_statuses``): 401 from stage 1,
  403 from stage 2 (the permission) or the session's CSRF check, 429 from stage 3 unless
  exempt, 304 from stage 4 where a GET is cached, 413/415/400 where a JSON body is read,
  400 for an unknown query parameter (blueprints/parsing.py), 404 where the path names a
  resource, 422 where arguments are validated, 503 everywhere (database, Redis, a
  provider); plus the refusals a view declares itself (``alt_response``: 409, 410, ...);
- every error is one ``Problem`` (application/problem+json, errors.py), with the
  extension members of its status;
- the response headers: X-Request-ID always, RateLimit/RateLimit-Policy where limited,
  Retry-After on 429 and 503, ETag/X-Cache/Age where cached.

Then the whole document is tightened once (``finalize``): every response property is
required (the serializers always write every key; tests/test_openapi_contract.py checks
real answers), request fields lose ``default: null``, query parameters cannot be null.
"""
import copy
import importlib.resources

from apispec import BasePlugin
from flask import current_app

from . import merge_patch
from .errors import PROBLEM_TYPE_BASE
from .identity.permissions import PERMISSIONS, READ_PERMISSIONS, USER_ONLY_PERMISSIONS
from .pipeline import route_policy_for
from .pipeline.declarations import ANY_QUERY
from .routing import MAX_ROW_ID

# /docs is self-contained: Swagger UI's files come from the flask-swagger-ui package
# (its dist folder, Swagger UI's own build) and are served by the gateway at this path
SWAGGER_UI_ASSETS_PATH = "/docs/assets/"
SWAGGER_UI_DIST = importlib.resources.files("flask_swagger_ui") / "dist"

PROBLEM_MEDIA_TYPE = "application/problem+json"
SAFE_METHODS = ("get", "head")
DOCUMENTED_METHODS = ("get", "put", "post", "patch", "delete")
MERGE_PATCH_NOTE = ("The body is a JSON merge patch (RFC 7396), sent as application/merge-patch+json "
                    "or application/json: null deletes a member, objects merge member by member, "
                    "arrays and other values replace.")
# a view's marker (``refuses_api_keys``): it answers only a user's credentials
REFUSES_API_KEYS = "gateway_refuses_api_keys"
# a view's marker (``undocumented``): not part of the API (files, pages for people)
UNDOCUMENTED = "gateway_undocumented"

SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An API key; its scopes (read, write) are listed per operation."},
    "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from POST /api/v1/auth/token; the roles that "
                                   "may call an operation are listed per operation."},
    "session": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                "description": "The cookie set by POST /api/v1/auth/login."},
    "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                  "description": "The csrf_token login returned; a session's state-changing "
                                 "requests send it."},
    "adminToken": {"type": "http", "scheme": "bearer",
                   "description": "GATEWAY_ADMIN_TOKEN, for /gateway/admin/*"},
}


def refuses_api_keys(view):
    """Mark a view that acts on the calling user's own credential (an API key has none)."""
    setattr(view, REFUSES_API_KEYS, True)
    return view


def undocumented(view):
    """Mark a view that is not part of the API document."""
    setattr(view, UNDOCUMENTED, True)
    return view


# schemas only a field's metadata names (any_of_components): registered by ``install``
NAMED_COMPONENTS = {}


def any_of_components(*schemas, nullable=False):
    """A field's metadata: its value is one of these marshmallow schemas (which the
    document then holds as components), for a value a view builds itself."""
    for schema in schemas:
        NAMED_COMPONENTS[schema.__name__] = schema
    options = [schema_ref(schema.__name__) for schema in schemas]
    return {"anyOf": options + [{"type": "null"}] if nullable else options}


def text_body(media_type, description, status=200):
    """``blp.doc`` arguments: the ``status`` answer's body is text of ``media_type``
    (flask-smorest documents a content type only with a schema)."""
    return {"responses": {str(status): {"description": description,
                                        "content": {media_type: {"schema": {"type": "string"}}}}}}


def schema_ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def header_ref(name):
    return {"$ref": f"#/components/headers/{name}"}


# -- problems (errors.py) ------------------------------------------------------------------
def _problem_with(status, description, properties, required=()):
    # the status as a constant: generated clients can tell the problems apart by it
    extension = {"type": "object", "properties": {"status": {"type": "integer", "enum": [status]},
                                                  **properties}}
    if required:
        extension["required"] = list(required)
    return {"description": description, "allOf": [schema_ref("Problem"), extension]}


STRING_LIST = {"type": "array", "items": {"type": "string"}}
PROBLEM_SCHEMAS = {
    "Problem": {
        "type": "object",
        "description": "An error (RFC 9457). Statuses add extension members (PermissionProblem, "
                       "ConflictProblem, ValidationProblem, RateLimitProblem, ...).",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": {"type": "string", "format": "uri",
                     "description": f"{PROBLEM_TYPE_BASE}<kind>, e.g. rate-limited"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "request_id": {"type": ["string", "null"],
                           "description": "The request's X-Request-ID: quote it when asking for help."},
        },
        # open (JSON Schema's default) without an index signature in generated types, so
        # that the members of each status's problem narrow the union a client receives
    },
    "BadRequestProblem": _problem_with(
        400, "400: malformed JSON, or query parameters the operation does not take.", {
            "parameters": {**STRING_LIST, "description": "The unknown query parameters."},
            "accepted": {**STRING_LIST, "description": "The query parameters the operation takes."},
        }),
    "PermissionProblem": _problem_with(
        403, "403: the caller lacks a permission (named), or a session write lacks X-CSRF-Token.", {
            "permission": {"type": "string", "enum": sorted(PERMISSIONS)},
        }),
    "ConflictProblem": _problem_with(
        409, "409: the request conflicts with the resource's state or another resource.", {
            "field": {"type": "string", "description": "The member that conflicts."},
            "existing_customer_id": {"type": "integer", "description": "The customer with that phone or e-mail."},
            "conflicting_appointment_id": {"type": "integer", "description": "The appointment overlapping."},
            "current_status": {"type": "string"},
            "requested_status": {"type": "string"},
            "allowed_statuses": STRING_LIST,
        }),
    "ValidationProblem": _problem_with(
        422, "422: the request did not match the schema.", {
            "errors": {"type": "object", "description": "Member -> its messages (nested for "
                       "nested members).", "additionalProperties": schema_ref("FieldErrors")},
        }, required=("errors",)),
    "FieldErrors": {
        "description": "A member's messages, or (for an object or a list) its members' messages.",
        "anyOf": [STRING_LIST, {"type": "object", "additionalProperties": True}],
    },
    "UnsupportedMediaTypeProblem": _problem_with(
        415, "415: the body, or an uploaded file, is not of a type the operation takes.", {
            "expected": {"type": "string", "description": "The type, or the types, taken."},
            "received": {"type": ["string", "null"]},
            "accepted": {**STRING_LIST, "description": "An upload's accepted file types."},
        }, required=("expected", "received")),
    "RateLimitProblem": _problem_with(
        429, "429: a rate limit is exhausted; retry after Retry-After seconds.", {
            "layer": {"type": "string", "enum": ["ip", "user", "company", "endpoint", "resource",
                                                 "login", "admin_refusals"]},
            "limit": {"type": "integer", "description": "Requests allowed per window."},
            "window": {"type": "integer", "description": "The window, in seconds."},
            "policy": {"type": "string", "description": "The quota's name (as in RateLimit-Policy)."},
            "retry_after": {"type": "integer", "description": "Seconds, as Retry-After."},
        }, required=("layer", "limit")),
    "UnavailableProblem": _problem_with(
        503, "503: the database, Redis or an upstream is unavailable; retry after Retry-After.", {
            "service": {"type": "string", "description": "The upstream whose circuit is open."},
            "provider": {"type": "string", "description": "The webhook's provider."},
        }),
    # the statuses without members of their own still get their constant, so that
    # ``status === 404`` narrows a generated client's union to one problem
    "UnauthorizedProblem": _problem_with(401, "401: no credential, or one not accepted.", {}),
    "NotFoundProblem": _problem_with(404, "404: nothing with this id in the caller's company.", {}),
    "GoneProblem": _problem_with(410, "410: it existed and is gone; request a new one.", {}),
    "PayloadTooLargeProblem": _problem_with(413, "413: the body exceeds the limit.", {}),
    "BadGatewayProblem": _problem_with(
        502, "502: the upstream refused the gateway's request.", {
            "upstream_status": {"type": "integer", "description": "The upstream's own status."},
        }),
}
PROBLEM_SCHEMA_OF = {400: "BadRequestProblem", 401: "UnauthorizedProblem", 403: "PermissionProblem",
                     404: "NotFoundProblem", 409: "ConflictProblem", 410: "GoneProblem",
                     413: "PayloadTooLargeProblem", 415: "UnsupportedMediaTypeProblem",
                     422: "ValidationProblem", 429: "RateLimitProblem", 502: "BadGatewayProblem",
                     503: "UnavailableProblem"}

HEADERS = {
    "X-Request-ID": {"description": "The request's id (the client's, if well-formed, or a new one).",
                     "schema": {"type": "string"}},
    "RateLimit": {"description": "draft-ietf-httpapi-ratelimit-headers-11: the quota closest to "
                                 "exhaustion, e.g. \"user\";r=499;t=3600.",
                  "schema": {"type": "string"}},
    "RateLimit-Policy": {"description": "draft-ietf-httpapi-ratelimit-headers-11: every quota "
                                        "applied, e.g. \"user\";q=500;w=3600.",
                         "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                    "schema": {"type": "integer", "minimum": 0}},
    "ETag": {"description": "The representation's tag, for If-None-Match.", "schema": {"type": "string"}},
    "X-Cache": {"description": "Where the answer came from.",
                "schema": {"type": "string", "enum": ["HIT-L1", "HIT-L2", "MISS", "BYPASS", "STALE"]}},
    "Age": {"description": "Seconds since a cached answer was made (on hits).",
            "schema": {"type": "integer", "minimum": 0}},
}
IF_NONE_MATCH = {"in": "header", "name": "If-None-Match", "required": False,
                 "description": "An ETag this client holds: 304 when it is still current.",
                 "schema": {"type": "string"}}

ERROR_DESCRIPTIONS = {
    404: "Not found in the caller's company.",
    413: "The body exceeds the gateway's limit.",
    415: "The body was not sent as application/json (or application/*+json).",
    422: "The request did not match the schema (errors names each member).",
    429: "A rate limit is exhausted (layer, limit, window, policy, retry_after).",
    503: "The database, Redis or an upstream is unavailable; retry after Retry-After.",
}


# -- what the declarations imply -------------------------------------------------------------
def security_for(route_policy, method, view):
    """The credentials that may call an operation, as stages 1 and 2 enforce them. Scopes of
    an API key and roles of a user's credential are listed as OpenAPI 3.1 allows."""
    if route_policy.get("admin"):
        return [{"adminToken": []}]
    if route_policy.get("public"):
        return []
    permission = route_policy.get("permission")
    roles = sorted(PERMISSIONS[permission]) if permission else []
    session = {"session": roles}
    if method not in SAFE_METHODS:
        session["csrfToken"] = []
    user = [{"bearerToken": roles}, session]
    if permission in USER_ONLY_PERMISSIONS or getattr(view, REFUSES_API_KEYS, False):
        return user
    scopes = ["read" if permission in READ_PERMISSIONS else "write"] if permission else []
    return [{"apiKey": scopes}] + user


class Operation:
    """One documented operation and the declarations of the view behind it."""

    def __init__(self, app, endpoint, path, method, doc):
        self.endpoint, self.path, self.method, self.doc = endpoint, path, method, doc
        self.view = app.view_functions.get(endpoint)
        self.policy = route_policy_for(app, endpoint)
        blueprint = app.blueprints.get(endpoint.partition(".")[0])
        self.any_query = bool(getattr(blueprint, "any_query", False) or getattr(self.view, ANY_QUERY, False))

    @property
    def limited(self):
        return not self.policy.get("exempt_limits")

    @property
    def cached(self):
        return bool(self.policy.get("cache")) and self.method in SAFE_METHODS

    @property
    def reads_json(self):
        return "application/json" in self.doc.get("requestBody", {}).get("content", {})

    def error_statuses(self):
        """status -> why, for every refusal the pipeline (and the parser) can make here."""
        why = {401: "No credential where one is needed, or one that is malformed, unknown, "
                    "revoked or expired (a credential sent is always checked)."}
        bad_request = []
        if self.reads_json:
            bad_request.append("the body is not JSON the gateway accepts (I-JSON)")
            why[413] = ERROR_DESCRIPTIONS[413]
            why[415] = ERROR_DESCRIPTIONS[415]
        if not self.any_query:
            bad_request.append("a query parameter this operation does not take (parameters, accepted)")
        if bad_request:
            why[400] = "; or ".join(bad_request).capitalize() + "."
        forbidden = []
        if self.policy.get("permission"):
            forbidden.append(f"the caller lacks {self.policy['permission']} (permission)")
        if self.method not in SAFE_METHODS and not (self.policy.get("public") or self.policy.get("admin")):
            forbidden.append("a session's request lacks X-CSRF-Token")
        if forbidden:
            why[403] = "; or ".join(forbidden).capitalize() + "."
        if "{" in self.path:
            why[404] = ERROR_DESCRIPTIONS[404]
        if self.policy.get("admin"):
            why[404] = "The admin API is disabled (GATEWAY_ADMIN_TOKEN unset), or nothing has this id."
            why[429] = "This address spent its quota of wrong admin tokens (admin_refusals)."
        if self.limited:
            why[429] = ERROR_DESCRIPTIONS[429]
        if any(p.get("in") == "query" for p in self.doc.get("parameters", [])) or "requestBody" in self.doc:
            why[422] = ERROR_DESCRIPTIONS[422]
        if self.policy.get("upstream"):
            why[502] = f"{self.policy['upstream']} refused the gateway's request (upstream_status)."
        why[503] = ERROR_DESCRIPTIONS[503]
        return why

    def response_headers(self, status):
        headers = {"X-Request-ID": header_ref("X-Request-ID")}
        if self.limited:
            headers["RateLimit"] = header_ref("RateLimit")
            headers["RateLimit-Policy"] = header_ref("RateLimit-Policy")
        if status == 429:
            headers["Retry-After"] = header_ref("Retry-After")
        if status == 503:   # not when a provider is not configured: retrying will not help
            headers["Retry-After"] = {**HEADERS["Retry-After"], "required": False}
        if self.cached:   # the stage marks every answer it saw, and tags the ones it kept
            headers["X-Cache"] = header_ref("X-Cache")
            if status in (200, 304):
                headers.update({"ETag": header_ref("ETag"), "Age": header_ref("Age")})
        return headers

    def complete(self):
        doc = self.doc
        doc.setdefault("operationId", camel_case(self.view.__name__))
        doc["security"] = security_for(self.policy, self.method, self.view)
        permission = self.policy.get("permission")
        if permission:
            doc["x-permission"] = permission
        responses = doc.setdefault("responses", {})
        responses.pop("default", None)
        for status, why in self.error_statuses().items():
            declared = responses.get(str(status))
            if declared is not None and "$ref" not in declared and declared.get("description"):
                why = declared["description"]
            responses[str(status)] = {"description": why}
        for status, response in responses.items():
            code = int(status)
            if code >= 400:
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": schema_ref(
                    PROBLEM_SCHEMA_OF.get(code, "Problem"))}}
            response["headers"] = {**self.response_headers(code), **response.get("headers", {})}
        if self.cached:
            responses["304"] = {"description": "Not Modified: If-None-Match named the current ETag.",
                                "headers": self.response_headers(304)}
            doc.setdefault("parameters", []).append(IF_NONE_MATCH)
        doc["responses"] = dict(sorted(responses.items()))
        if self.method == "patch":
            document_merge_patch(doc)


def camel_case(name):
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def document_merge_patch(operation):
    """Every PATCH body is a merge patch (gateway_app/merge_patch.py): say so, and accept
    its media type beside application/json, which webargs parses alike (any +json)."""
    body = operation.get("requestBody")
    if not body or "application/json" not in body.get("content", {}):
        return
    content = body["content"]
    content.setdefault(merge_patch.MEDIA_TYPE, copy.deepcopy(content["application/json"]))
    body["description"] = (body.get("description", "") + " " + MERGE_PATCH_NOTE).strip()


class OperationsFromPolicy(BasePlugin):
    """apispec plugin (flask-smorest's ``extra_plugins``): remembers which view each
    documented operation belongs to (flask-smorest passes the rule), for ``finalize``."""

    def __init__(self, app):
        self.app = app
        self.endpoints = {}   # (OpenAPI path, method) -> endpoint

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        for method in operations:
            self.endpoints[(path, method)] = rule.endpoint


# -- the whole document ----------------------------------------------------------------------
def finalize(app, document, endpoints):
    """The document as served: operations completed from their declarations, undocumented
    views dropped, response schemas exact, request schemas without null defaults."""
    document["servers"] = [{"url": "/", "description": "This gateway (the host serving this document)."}]
    for path, operations in list(document["paths"].items()):
        for method in [name for name in operations if name in DOCUMENTED_METHODS]:
            endpoint = endpoints.get((path, method))
            if endpoint is None or not documented(app, endpoint):
                del operations[method]
                continue
            Operation(app, endpoint, path, method, operations[method]).complete()
        if not any(name in DOCUMENTED_METHODS for name in operations):
            del document["paths"][path]
    components = document.setdefault("components", {})
    components.pop("responses", None)   # flask-smorest's DEFAULT_ERROR, UNPROCESSABLE_ENTITY
    schemas = components.setdefault("schemas", {})
    for unused in ("Error", "PaginationMetadata"):
        schemas.pop(unused, None)
    schemas.update(copy.deepcopy(PROBLEM_SCHEMAS))
    components["headers"] = copy.deepcopy(HEADERS)
    components["securitySchemes"] = copy.deepcopy(SCHEMES)
    tighten_schemas(document)
    return document


def documented(app, endpoint):
    blueprint = app.blueprints.get(endpoint.partition(".")[0])
    return (getattr(blueprint, "documented", True)
            and not getattr(app.view_functions.get(endpoint), UNDOCUMENTED, False))


def referenced_schemas(document, start):
    """Names of the component schemas reachable from ``start`` (any JSON value)."""
    schemas = document["components"]["schemas"]
    found, pending = set(), [start]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            ref = value.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    pending.append(schemas.get(name, {}))
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return found


def request_and_response_parts(document):
    requests, responses = [], []
    for operations in document["paths"].values():
        for method, operation in operations.items():
            if method not in DOCUMENTED_METHODS:
                continue
            requests.append(operation.get("requestBody", {}))
            responses.append(operation.get("responses", {}))
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    drop_null(parameter.get("schema", {}))
            for parameter in operations.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter.get("in") == "path" and schema.get("type") == "integer":
                    schema["maximum"] = MAX_ROW_ID   # gateway_app/routing.py: ids are BIGINTs
    return requests, responses


def drop_null(schema):
    """A query string cannot carry null: an absent parameter is what null meant."""
    if schema.get("default", 0) is None:
        del schema["default"]
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        kinds = [kind for kind in kinds if kind != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]


def body_required(document, body):
    """An empty body is an empty document (docs/contract.md section 8): a body is required
    only where its schema requires a member."""
    for media in body.get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return bool(schema.get("required"))
    return False


def tighten_schemas(document):
    requests, responses = request_and_response_parts(document)
    schemas = document["components"]["schemas"]
    for body in requests:
        if body:
            body["required"] = body_required(document, body)
    read = referenced_schemas(document, responses) - set(PROBLEM_SCHEMAS)
    written = referenced_schemas(document, requests)
    for name in written:
        for prop in schemas[name].get("properties", {}).values():
            if prop.get("default", 0) is None:
                del prop["default"]   # "absent" is the default; null would make it look required
    for name in read - written:
        schema = schemas[name]
        properties = schema.get("properties")
        if properties:
            schema["required"] = sorted(set(schema.get("required", ())) | set(properties))
    for body in requests:
        for media in body.get("content", {}).values():
            schema = media.get("schema", {})
            for prop in schema.get("properties", {}).values():
                if prop.get("default", 0) is None:
                    del prop["default"]


def serve_document():
    """GET /openapi.json: the finalized document, made once per app."""
    app = current_app
    state = app.extensions["gateway_openapi"]
    if state.get("body") is None:
        api, plugin = state["api"], state["plugin"]
        document = finalize(app, api.spec.to_dict(), plugin.endpoints)
        state["body"] = app.json.dumps(document, indent=2)
    return app.response_class(state["body"], mimetype="application/json")


def install(app, api, plugin):
    """Serve the finalized document at flask-smorest's own /openapi.json route."""
    app.extensions["gateway_openapi"] = {"api": api, "plugin": plugin, "body": None}
    for name, schema in NAMED_COMPONENTS.items():
        if name not in api.spec.components.schemas:
            api.spec.components.schema(name, schema=schema)
    app.view_functions["api-docs.openapi_json"] = serve_document
