"""The request pipeline, in the order of the seed's request-flow diagram.

Adding a stage means adding a module here and one line in STAGES.
"""
import time

from flask import g, request

from ..context import RequestContext, accept_request_id, client_ip_of
from .authentication import AuthenticationStage
from .authorization import AuthorizationStage
from .caching import CachingStage
from .circuit_breaker import CircuitBreakerStage
from .metrics import MetricsStage
from .rate_limiting import RateLimitingStage
from .service_discovery import ServiceDiscoveryStage
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
        self.trusted_hops = app.config.get("TRUSTED_PROXY_HOPS", 0)
        app.before_request(self.run_before)
        app.after_request(self.run_after)

    def stage(self, name):
        return self.by_name[name]

    def run_before(self):
        ctx = RequestContext(request_id=accept_request_id(request.headers.get("X-Request-ID")))
        ctx.route_policy = route_policy_for(self.app, request.endpoint)
        ctx.service = service_for(self.app, request.blueprint, ctx.route_policy)
        ctx.client_ip = client_ip_of(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                     self.trusted_hops)
        g.gateway = ctx
        for stage in self.stages:
            started = time.perf_counter()
            ctx.stages_run.append(stage.name)
            result = stage.before(ctx, request)
            ctx.timings[stage.name] = time.perf_counter() - started
            if result is not None:
                ctx.short_circuited_by = stage.name
                return result
        return None

    def run_after(self, response):
        ctx = g.get("gateway")
        if ctx is None:  # a failure before the context existed
            return response
        for stage in reversed(self.stages):
            if stage.name in ctx.stages_run or stage.always_after:
                response = stage.after(ctx, request, response)
        return response
