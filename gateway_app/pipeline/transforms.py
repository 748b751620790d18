"""Stage 7: the request transform, and the response transform after the handler.

Kong's request-transformer and response-transformer, declared per service (and per
route, whose declaration replaces the service's for that direction) in the policy's
``transforms`` section: headers and query parameters removed, renamed, replaced, added
and appended; a path prefix stripped or added; top-level JSON fields removed, renamed,
replaced and added. What each does is gateway_app/transforms/.

It runs after the circuit breaker and before service discovery, so a local view and a
remote instance receive the same transformed request, and its ``after`` runs before the
caching stage's: the cache keeps the transformed answer (its ETag computed over the
transformed body) and keys it on the request as the client sent it, which determines
the transformed one. A stale copy served when the upstream fails was stored
transformed, and is not transformed again. Authentication, authorization and rate
limiting have judged the client's own request before it is changed, and the answer's
per-request headers (request id, rate limits, CORS, security headers) are added by
stages whose ``after`` runs later, so no transform can remove or forge them; nor can one
name a header the gateway owns (the policy is refused at start).
"""
import json

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..extensions import SERVICES
from ..policy_types import PolicyError, positive, strict
from ..transforms import RequestTransform, ResponseTransform
from .base import Stage
from .service_discovery import SERVICE_PATH

# headers the gateway makes or guards, with why a transform may not name them
OWNED_HEADERS = {
    **dict.fromkeys(("x-request-id",), "the request id is the gateway's"),
    **dict.fromkeys(("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via"),
                    "the gateway sets it from the connection"),
    **dict.fromkeys(("authorization", "x-api-key", "cookie", "x-csrf-token", "set-cookie"),
                    "credentials and the gateway's cookies never pass through a transform"),
    **dict.fromkeys(("host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
                     "trailer", "upgrade", "proxy-authenticate", "proxy-authorization",
                     "proxy-connection"),
                    "it describes one message and is worked out for each"),
    **dict.fromkeys(("ratelimit", "ratelimit-policy", "retry-after", "x-cache", "age"),
                    "a later stage sets it on each answer"),
}
OWNED_PREFIXES = {"x-gateway-": "the identity the gateway passes (and signs) is the gateway's alone",
                  "access-control-": "the cors stage decides it for each answer"}


# a new field for each use: marshmallow binds a field to the one place it is declared
def header_name():
    return fields.String(validate=validate.Regexp(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", error="not a header name"))


def header_value():
    return fields.String(validate=validate.Regexp(r"^[^\r\n\x00]*$",
                                                  error="a header value cannot hold CR, LF or NUL"))


def parameter():
    return fields.String(validate=validate.Length(min=1))


def path_prefix():
    """Whole segments: a leading slash, none trailing, no empty segment, no query."""
    return fields.String(validate=validate.Regexp(r"^(/[^/\s?#]+)+$",
                                                  error="expected a path such as /v2 (no trailing slash)"))


def owned_header_reason(name):
    lowered = name.lower()
    for prefix, reason in OWNED_PREFIXES.items():
        if lowered.startswith(prefix):
            return reason
    return OWNED_HEADERS.get(lowered)


def json_value(value):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError("not a JSON value (quote dates and times)") from None


def names_used(data):
    """(operation, header name) for each name the operations mention, a rename's both."""
    for name in data.get("remove", ()):
        yield "remove", name
    for old, new in data.get("rename", {}).items():
        yield "rename", old
        yield "rename", new
    for operation in ("replace", "add", "append"):
        for name in data.get(operation, {}):
            yield operation, name


@strict
class HeaderOperationsSchema(Schema):
    remove = fields.List(header_name())
    rename = fields.Dict(keys=header_name(), values=header_name())
    replace = fields.Dict(keys=header_name(), values=header_value())
    add = fields.Dict(keys=header_name(), values=header_value())
    append = fields.Dict(keys=header_name(), values=header_value())

    @validates_schema
    def no_owned_header(self, data, **kwargs):
        errors = {}
        for operation, name in names_used(data):
            reason = owned_header_reason(name)
            if reason:
                errors.setdefault(operation, {})[name] = [f"a transform may not name {name}: {reason}"]
        if errors:
            raise ValidationError(errors)


@strict
class QueryOperationsSchema(Schema):
    remove = fields.List(parameter())
    rename = fields.Dict(keys=parameter(), values=parameter())
    replace = fields.Dict(keys=parameter(), values=fields.String())
    add = fields.Dict(keys=parameter(), values=fields.String())
    append = fields.Dict(keys=parameter(), values=fields.String())


@strict
class JsonOperationsSchema(Schema):
    """Top-level fields of a JSON object body; values are any JSON value."""
    remove = fields.List(parameter())
    rename = fields.Dict(keys=parameter(), values=parameter())
    replace = fields.Dict(keys=parameter(), values=fields.Raw(allow_none=True, validate=json_value))
    add = fields.Dict(keys=parameter(), values=fields.Raw(allow_none=True, validate=json_value))


@strict
class PathSchema(Schema):
    strip_prefix = path_prefix()   # stripped first, then
    add_prefix = path_prefix()     # added


@strict
class RequestTransformSchema(Schema):
    path = fields.Nested(PathSchema)
    headers = fields.Nested(HeaderOperationsSchema)
    query = fields.Nested(QueryOperationsSchema)
    json = fields.Nested(JsonOperationsSchema)


@strict
class ResponseTransformSchema(Schema):
    headers = fields.Nested(HeaderOperationsSchema)
    json = fields.Nested(JsonOperationsSchema)


@strict
class RouteTransformsSchema(Schema):
    request = fields.Nested(RequestTransformSchema)
    response = fields.Nested(ResponseTransformSchema)


@strict
class ServiceTransformsSchema(RouteTransformsSchema):
    # a route's rule as the gateway declares it, e.g. /api/v1/calls/<int:call_id>
    routes = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^/", error="a rule starts with /")),
                         values=fields.Nested(RouteTransformsSchema), load_default=dict)


@strict
class TransformsSchema(Schema):
    # a JSON request body a transform reads is held whole: over this, 413
    max_body_bytes = fields.Integer(load_default=1048576, validate=positive)
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=fields.Nested(ServiceTransformsSchema), load_default=dict)


class ServiceTransforms:
    """A service's (request transform, response transform), and its routes' own."""

    def __init__(self, config, max_body_bytes):
        request = RequestTransform.from_config(config.get("request"), max_body_bytes)
        response = ResponseTransform.from_config(config.get("response"), max_body_bytes)
        self.default = (request, response)
        self.routes = {}
        for rule, route in config.get("routes", {}).items():
            # a direction the route declares replaces the service's (as a Kong plugin on a
            # route replaces the same plugin on its service); the other is inherited
            self.routes[rule] = (
                RequestTransform.from_config(route["request"], max_body_bytes) if "request" in route else request,
                ResponseTransform.from_config(route["response"], max_body_bytes) if "response" in route else response)

    def for_rule(self, rule):
        return self.routes.get(rule, self.default) if self.routes else self.default


class TransformsStage(Stage):
    name = "transforms"
    section = "transforms"   # of conf/gateway.yaml; its schema is above

    def __init__(self, config, services_by_rule):
        """``services_by_rule``: each URL rule the app declares -> the services its views belong to."""
        self.by_service = {}
        for service, spec in config["services"].items():
            for rule in spec.get("routes", {}):
                owners = services_by_rule.get(rule)
                if not owners or service not in owners:
                    found = f"its views belong to {', '.join(sorted(owners))}" if owners else "no view has it"
                    raise PolicyError(f"transforms.services.{service}.routes.{rule}: not a route of the "
                                      f"{service} service ({found})")
            self.by_service[service] = ServiceTransforms(spec, config["max_body_bytes"])

    def before(self, ctx, request):
        transforms = self.by_service.get(ctx.service)
        if transforms is None:
            if ctx.service is not None or request.endpoint is not None or not self.by_service:
                return None   # the usual case: nothing declared for this route
            transforms = self.for_undeclared_path(ctx, request)
            if transforms is None:
                return None
        url_rule = request.url_rule
        request_transform, ctx.response_transform = transforms.for_rule(
            url_rule.rule if url_rule is not None else None)
        if request_transform is not None:
            request_transform.apply(request)
        return None

    def for_undeclared_path(self, ctx, request):
        """A path no view declares may still be a remote service's (pipeline/service_discovery.py):
        its service's transforms, with the service noted before the path is rewritten."""
        match = SERVICE_PATH.match(request.path)
        transforms = self.by_service.get(match.group(1)) if match else None
        if transforms is not None:
            ctx.service = match.group(1)
        return transforms

    def after(self, ctx, request, response):
        transform = ctx.response_transform
        if transform is None or ctx.cache_status == "STALE":   # a stale copy was stored transformed
            return response
        return transform.apply(response)
