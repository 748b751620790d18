"""Stage 5: circuit breaker. A view that depends on an open upstream gets the fallback.

Views declare ``gateway_policy(upstream="stripe")``. While that upstream's breaker is
open, the view is not run and the request gets the fallback (pipeline/fallback.py):
the last good copy for a GET, else 503 naming the service with ``Retry-After``
(seconds until the next probe). A call that fails inside the view raises
``UpstreamUnavailable`` and gets the same fallback through the error handler below.
"""
from flask import g, request
from marshmallow import Schema, fields, validates_schema

from ..errors import problem_response
from ..integrations.http import NotConfigured, ProviderRejected, UpstreamUnavailable
from ..policy_types import positive, require_complete_defaults, strict
from .base import Stage


@strict
class BreakerSchema(Schema):
    failure_threshold = fields.Integer(validate=positive)
    failure_window = fields.Integer(validate=positive)
    reset_timeout = fields.Integer(validate=positive)
    half_open_probes = fields.Integer(validate=positive)


@strict
class CircuitBreakerSchema(Schema):
    defaults = fields.Nested(BreakerSchema, required=True)
    services = fields.Dict(keys=fields.String(), values=fields.Nested(BreakerSchema),
                           required=True)

    @validates_schema
    def defaults_complete(self, data, **kwargs):
        require_complete_defaults(BreakerSchema, data)


class CircuitBreakerStage(Stage):
    name = "circuit_breaker"
    section = "circuit_breaker"   # of conf/gateway.yaml; its schema is above

    def __init__(self, app, breakers, fallback):
        self.breakers = breakers
        self.fallback = fallback
        install_error_handlers(app, fallback)

    def before(self, ctx, request):
        upstream = ctx.route_policy.get("upstream")
        if not upstream:
            return None
        ctx.upstream = upstream
        wait = self.breakers.get(upstream).rejecting()
        if wait is None:
            return None
        return self.fallback.answer(ctx, request, upstream, wait, "its circuit breaker is open")


def install_error_handlers(app, fallback):
    def handle_upstream_unavailable(exc):
        return fallback.answer(g.gateway, request, exc.service, exc.retry_after,
                               "its circuit breaker is open" if exc.breaker_open else "the call failed")

    app.register_error_handler(UpstreamUnavailable, handle_upstream_unavailable)
    app.register_error_handler(NotConfigured, handle_not_configured)
    app.register_error_handler(ProviderRejected, handle_provider_rejected)


def handle_not_configured(exc):
    return problem_response(503, "Service Unavailable", str(exc),
                            problem_type="integration-not-configured", service=exc.service)


def handle_provider_rejected(exc):
    return problem_response(502, "Bad Gateway",
                            f"{exc.service} refused the request (HTTP {exc.status}).",
                            problem_type="upstream-rejected", service=exc.service,
                            upstream_status=exc.status)
