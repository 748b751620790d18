"""The request pipeline, in the order of the seed's request-flow diagram.

Adding a stage means adding a module here and one line in STAGES.
"""
import time

from flask import g, request

from ..context import RequestContext, accept_request_id, client_ip_of, request_header
from .authentication import AuthenticationStage
from .authorization import AuthorizationStage
from .base import Stage
from .caching import CachingStage
from .circuit_breaker import CircuitBreakerStage
from .metrics import MetricsStage
from .rate_limiting import RateLimitingStage
from .service_discovery import ServiceDiscoveryStage
from .shared_reads import PrincipalUnconfirmed, SharedReads
from .transform import TransformStage

STAGES = [
    AuthenticationStage,    # 1. who is calling
    AuthorizationStage,     # 2. may they do this
    RateLimitingStage,      # 3. the five layers
    CachingStage,           # 4. L1 / L2
    CircuitBreakerStage,    # 5. upstream health, fallbacks
    ServiceDiscoveryStage,  # 6. local blueprint or remote instance
    TransformStage,         # 7. request/response shaping
    MetricsStage,           # metrics & monitoring
]


# flask-smorest's documentation views (openapi.json, docs) are bound methods we cannot decorate
DOCUMENTATION_POLICY = {"public": True, "exempt_limits": True}


def route_policy_for(app, endpoint):
    if endpoint and endpoint.startswith("api-docs."):
        return DOCUMENTATION_POLICY
    view = app.view_functions.get(endpoint) if endpoint else None
    return getattr(view, "gateway_policy", {}) if view else {}


def service_for(app, blueprint_name, route_policy):
    services = app.extensions["gateway"].services
    declared = route_policy.get("service", blueprint_name)
    return declared if declared in services else None


class Pipeline:
    def __init__(self, app, policy):
        self.app = app
        self.stages = [stage_class(app, policy) for stage_class in STAGES]
        self.by_name = {stage.name: stage for stage in self.stages}
        self.stage_names = tuple(stage.name for stage in self.stages)
        self.rate_limiting = self.by_name["rate_limiting"]
        # (position, stage, always_after), last stage first, for the stages with an ``after``
        self.reversed_stages = [(position, stage, stage.always_after)
                                for position, stage in reversed(list(enumerate(self.stages)))
                                if type(stage).after is not Stage.after]
        self.shared_readers = [stage for stage in self.stages if hasattr(stage, "shared_read_keys")]
        self.trusted_hops = app.config.get("TRUSTED_PROXY_HOPS", 0)
        self.declarations = {}   # endpoint -> (route policy, service)
        app.before_request(self.run_before)
        app.after_request(self.run_after)

    def stage(self, name):
        return self.by_name[name]

    def run_before(self):
        current = request._get_current_object()  # the stages get the object, not the proxy
        environ = current.environ
        ctx = self.new_context(current, accept_request_id(request_header(environ, "X-Request-ID")))
        try:
            return self.run_stages(ctx, current)
        except PrincipalUnconfirmed:
            # the principal this worker cached has changed, or Redis could not tell: start
            # over, checking it first (nothing was taken from any quota)
            ctx = self.new_context(current, ctx.request_id, ctx.started, may_defer=False)
            return self.run_stages(ctx, current)

    def new_context(self, request, request_id, started=None, may_defer=True):
        environ = request.environ
        ctx = RequestContext(request_id=request_id, stage_names=self.stage_names)
        if started is not None:
            ctx.started = started
        ctx.route_policy, ctx.service = self.declarations_of(request)
        ctx.client_ip = client_ip_of(request.remote_addr, request_header(environ, "X-Forwarded-For"),
                                     self.trusted_hops)
        ctx.limited = self.rate_limiting.applies_to(ctx, request)
        ctx.shared_reads = SharedReads(
            self.shared_read_declaration(ctx, request),
            may_defer=may_defer and ctx.limited and self.rate_limiting.limiter.shared_available)
        g.gateway = ctx
        return ctx

    def run_stages(self, ctx, request):
        clock = time.perf_counter
        marks = ctx.stage_marks   # when each stage ended, after when the first began
        marks.append(clock())
        for position, stage in enumerate(self.stages):
            ctx.stages_reached = position + 1   # counted before: a stage that raises gets its after
            result = stage.before(ctx, request)
            marks.append(clock())
            if result is not None:
                ctx.short_circuited_by = stage.name
                return result
        return None

    def declarations_of(self, request):
        """(route policy, service) of a request's endpoint; views cannot change once
        requests are served, so each endpoint is looked up once."""
        endpoint = request.endpoint
        found = self.declarations.get(endpoint)
        if found is None:
            route_policy = route_policy_for(self.app, endpoint)
            found = (route_policy, service_for(self.app, request.blueprint, route_policy))
            if endpoint is not None:
                self.declarations[endpoint] = found
        return found

    def shared_read_declaration(self, ctx, request):
        """principal -> the Redis keys the stages will read for this request (shared_reads.py)."""
        def declare(principal):
            keys = []
            for stage in self.shared_readers:
                keys.extend(stage.shared_read_keys(ctx, request, principal))
            return keys
        return declare

    def run_after(self, response):
        ctx = g.get("gateway")
        if ctx is None:  # a failure before the context existed
            return response
        current = request._get_current_object()
        reached = ctx.stages_reached
        for position, stage, always_after in self.reversed_stages:
            if always_after or position < reached:
                response = stage.after(ctx, current, response)
        return response
