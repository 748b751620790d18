"""Before the seed's stages: CORS for the browser origins in GATEWAY_CORS_ORIGINS.

A preflight (OPTIONS with Origin and Access-Control-Request-Method) from a listed origin
is answered here, before authentication and rate limiting: a browser never sends
credentials with one, so any later stage would refuse it. Every other answer to a listed
origin, errors included, gets the headers that let the portal read it; an unlisted origin
gets none, and its preflight goes down the chain as any OPTIONS request would.

The headers are added on the way out of every request (``always_after``) and after the
caching stage has kept its copy, so a cached answer never carries another origin's.
"""
from marshmallow import Schema, fields, validate

from ..policy_types import strict
from ..responses import GatewayResponse, append_made_headers
from .base import Stage

HEADER_NAME = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]+$"))
METHOD = fields.String(validate=validate.OneOf(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]))

# the contract's minimum (docs/contract.md section 1); conf/gateway.yaml states them too
DEFAULTS = {
    "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    "allow_headers": ["Authorization", "X-API-Key", "X-CSRF-Token", "Idempotency-Key",
                      "Content-Type", "If-None-Match", "X-Request-ID", "Cache-Control"],
    "expose_headers": ["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID",
                       "X-Cache", "ETag", "Age", "Idempotent-Replayed"],
    "max_age": 600,
}


@strict
class CorsSchema(Schema):
    allow_methods = fields.List(METHOD, load_default=lambda: list(DEFAULTS["allow_methods"]),
                                validate=validate.Length(min=1))
    allow_headers = fields.List(HEADER_NAME, load_default=lambda: list(DEFAULTS["allow_headers"]))
    expose_headers = fields.List(HEADER_NAME, load_default=lambda: list(DEFAULTS["expose_headers"]))
    # how long a browser may reuse a preflight's answer (seconds); browsers cap it themselves
    max_age = fields.Integer(load_default=DEFAULTS["max_age"], validate=validate.Range(min=0, max=86400))


class CorsStage(Stage):
    name = "cors"
    section = "cors"   # of conf/gateway.yaml; its schema is above
    always_after = True   # a 404 Flask answered without the chain is readable too

    def __init__(self, config, origins):
        """``origins``: settings.cors_origins (browser-serialised; ``*`` for any origin)."""
        self.enabled = bool(origins)
        self.listed = frozenset(origin for origin in origins if origin != "*")
        self.any_origin = "*" in origins
        self.expose = ", ".join(config["expose_headers"])
        self.preflight_headers = [
            ("Access-Control-Allow-Methods", ", ".join(config["allow_methods"])),
            ("Access-Control-Allow-Headers", ", ".join(config["allow_headers"])),
            ("Access-Control-Max-Age", str(config["max_age"])),
        ]

    def allowance(self, origin):
        """The headers an answer to ``origin`` carries, or None for an unlisted origin.

        A listed origin is echoed with credentials (cookies, for sessions); ``*`` never
        goes with credentials, which browsers would refuse anyway.
        """
        if origin is None:
            return None
        if origin in self.listed:
            # the listed string, not the request's: a value checked when settings were read
            return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]
        if self.any_origin:
            return [("Access-Control-Allow-Origin", "*")]
        return None

    def before(self, ctx, request):
        if not self.enabled or request.method != "OPTIONS":
            return None
        environ = request.environ
        if "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in environ:
            return None
        allowed = self.allowance(environ.get("HTTP_ORIGIN"))
        if allowed is None:
            return None
        response = GatewayResponse(status=204)
        append_made_headers(response.headers, [*allowed, *self.preflight_headers, ("Vary", "Origin")])
        return response

    def after(self, ctx, request, response):
        # a remote instance's own CORS headers never get this far, so neither a fresh
        # answer nor a cached copy can bypass the gateway's list (discovery/proxy.py)
        if not self.enabled or ctx.short_circuited_by == self.name:
            return response
        headers = response.headers
        # with origins listed, every answer depends on the Origin header, present or not
        vary = headers.get("Vary")
        if vary is None:
            headers.add("Vary", "Origin")
        elif "origin" not in {part.strip().lower() for part in vary.split(",")}:
            headers["Vary"] = f"{vary}, Origin"
        allowed = self.allowance(request.environ.get("HTTP_ORIGIN"))
        if allowed is not None:
            append_made_headers(headers, [*allowed, ("Access-Control-Expose-Headers", self.expose)])
        return response
