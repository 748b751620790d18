"""Stage 5: circuit breaker. A view that depends on an open upstream gets the fallback.

Views declare ``gateway_policy(upstream="stripe")``. While that upstream's breaker is
open, the view is not run and the request gets the fallback (pipeline/fallback.py):
the last good copy for a GET, else 503 naming the service with ``Retry-After``
(seconds until the next probe). A call that fails inside the view raises
``UpstreamUnavailable`` and gets the same fallback through the error handler below.
"""
from flask import current_app, g, request
from marshmallow import Schema, fields, validates_schema
from redis.exceptions import RedisError

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
    """A breaker's state is kept by each worker and read again only when the breaker's
    version moved (breakers.WindowedStorage.observe); the version is read with every
    request, in the round trip that confirms a cached principal (``call_ahead``), else
    on its own."""
    name = "circuit_breaker"
    section = "circuit_breaker"   # of conf/gateway.yaml; its schema is above

    def __init__(self, app, breakers, fallback, reads=None):
        self.breakers = breakers
        self.fallback = fallback
        self.reads = reads   # the request path's shared MGET (None without Redis)
        install_error_handlers(app, fallback)

    def version_keys(self, upstream):
        return [self.breakers.get(upstream).storage.version_key()]

    def call_ahead(self, ctx, request, principal):
        upstream = ctx.route_policy.get("upstream")
        if not upstream or self.reads is None:
            return None
        return self.reads, self.version_keys(upstream)

    def before(self, ctx, request):
        upstream = ctx.route_policy.get("upstream")
        if not upstream:
            return None
        ctx.upstream = upstream
        breaker = self.breakers.get(upstream)
        self.observe_version(ctx, upstream, breaker)
        wait = breaker.rejecting()
        if wait is None:
            return None
        return self.fallback.answer(ctx, request, upstream, wait, "its circuit breaker is open")

    def observe_version(self, ctx, upstream, breaker):
        """Hand the breaker its version as read after this request began; unread (no
        Redis, or Redis failing), the breaker reads its state itself."""
        if self.reads is None:
            return
        keys = self.version_keys(upstream)
        ahead = ctx.ahead.get(self.name) if ctx.ahead else None
        if ahead is not None and ahead[0] == keys:
            if isinstance(ahead[1], Exception):   # Redis failed this request's round trip:
                breaker.storage.unfollow()        # the storage's own fallback decides
            else:
                breaker.storage.observe(ahead[1][0])
            return
        try:
            breaker.storage.observe(self.reads.read(keys)[0])
        except (RedisError, OSError) as exc:
            current_app.logger.warning("circuit breaker %s: version unread (%s)", upstream, exc)
            breaker.storage.unfollow()


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
