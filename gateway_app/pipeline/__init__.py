"""The request pipeline, in the order of the seed's request-flow diagram.

``build_stages`` is the ordered list: adding a stage means adding a module here and one
line there. Each stage is built with the collaborators it needs, so no stage looks
another up while a request runs.

A stage ends the chain in one of two ways, and the pipeline records both alike (the
access log's ``short_circuited_by`` and the stage's timing, and the metric
``gateway_short_circuits_total``): it answers (returns a response: a cache hit, a
fallback, a proxied answer) or it refuses (raises GatewayProblem: 401, 403, 413, 429,
503), which the pipeline turns into the problem response there and then.
"""
import time

from flask import g, request

from ..context import RequestContext, accept_request_id, client_ip_of, request_header
from ..errors import GatewayProblem, problem_from
from ..files.schema import upload_body_limits
from .authentication import AuthenticationStage
from .authorization import AuthorizationStage
from .base import Stage
from .caching import CachingStage
from .circuit_breaker import CircuitBreakerStage
from .cors import CorsStage
from .fallback import Fallback
from .metrics import MetricsStage
from .rate_limiting import RateLimitingStage
from .service_discovery import ServiceDiscoveryStage
from .transform import TransformStage
from .transforms import TransformsStage


def build_stages(app, policy, state):
    """The stages in pipeline order, each given its section of the policy and its collaborators."""
    rate_limiting = RateLimitingStage(app, policy["rate_limiting"], policy["tiers"], state.redis,
                                      state.round_trips)
    caching = CachingStage(app, policy["caching"], state.redis, state.reads, state.round_trips)
    fallback = Fallback(caching.stale_response)
    service_discovery = ServiceDiscoveryStage(policy["service_discovery"], state.redis, state.breakers,
                                              fallback, state.reads, app.config.get("WORKER_CONNECTIONS", 200),
                                              app.response_class)
    circuit_breaker = CircuitBreakerStage(app, state.breakers, fallback,
                                          state.reads if state.redis is not None else None)
    return [
        # first in, so that its ``after`` runs last: it counts and logs the response the
        # client gets (a 304 made by caching, the time of an L2 write included)
        MetricsStage(policy["metrics"], app.config.get("ACCESS_LOG", True)),  # metrics & monitoring
        # next, so that an oversized body is refused before any work, and the headers it
        # makes for each answer (request id, security headers, Cache-Control: private)
        # are added after caching's ``after``: never kept in a cached copy
        TransformStage(policy["transform"], upload_body_limits(policy["files"])),  # request/response shaping
        CorsStage(policy["cors"], app.config.get("GATEWAY_CORS_ORIGINS", ())),  # browsers' preflights
        # confirming a cached principal is one Redis round trip, which carries rate
        # limiting's quotas, caching's generation tokens, the version of the breaker of
        # a provider the view calls and, for a remote service, the versions of its
        # registry entry and breaker (Stage.call_ahead); a refusal (401) spends the
        # address's ip quotas
        AuthenticationStage(app, policy["authentication"], state.identity,   # 1. who is calling
                            ahead_of=(rate_limiting, caching, circuit_breaker, service_discovery),
                            on_refusal=rate_limiting.spend_on_refusal,
                            refusals_left=rate_limiting.refuse_when_refusals_exhausted),
        AuthorizationStage(),                                                # 2. may they do this
        rate_limiting,                                                       # 3. five layers
        caching,                                                             # 4. L1 / L2
        circuit_breaker,                                                     # 5. upstream health
        # the seed's 7, before 6: service discovery answers for a remote service in its
        # ``before``, so the request is transformed first, for local and remote alike
        TransformsStage(policy["transforms"], services_by_rule(app)),        # 7. request/response transform
        service_discovery,                                                   # 6. local or remote
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


def services_by_rule(app):
    """Each URL rule of the app -> the services its views belong to."""
    found = {}
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0] or None
        service = service_for(app, blueprint, route_policy_for(app, rule.endpoint))
        if service is not None:
            found.setdefault(rule.rule, set()).add(service)
    return found


class Pipeline:
    def __init__(self, app, stages):
        self.app = app
        self.stages = stages
        self.by_name = {stage.name: stage for stage in stages}
        self.stage_names = tuple(stage.name for stage in stages)
        # (position, stage), last stage first, for the stages that change the response
        self.answering_stages = [(position, stage) for position, stage in reversed(list(enumerate(stages)))
                                 if type(stage).after is not Stage.after]
        self.trusted_hops = app.config.get("TRUSTED_PROXY_HOPS", 0)
        self.declarations = {}   # endpoint -> (route policy, service)
        app.before_request(self.run_before)
        app.after_request(self.run_after)

    def stage(self, name):
        """A stage by name, for the operator API and tests (stages never look each other up)."""
        return self.by_name[name]

    def run_before(self):
        current = request._get_current_object()  # the stages get the object, not the proxy
        environ = current.environ
        ctx = RequestContext(request_id=accept_request_id(request_header(environ, "X-Request-ID")),
                             stage_names=self.stage_names)
        ctx.route_policy, ctx.service = self.declarations_of(current)
        ctx.client_ip = client_ip_of(current.remote_addr, request_header(environ, "X-Forwarded-For"),
                                     self.trusted_hops)
        g.gateway = ctx
        return self.run_stages(ctx, current)

    def run_stages(self, ctx, request):
        clock = time.perf_counter
        marks = ctx.stage_marks   # when each stage ended, after when the first began
        marks.append(clock())
        for position, stage in enumerate(self.stages):
            ctx.stages_reached = position + 1
            try:
                answer = stage.before(ctx, request)
            except GatewayProblem as refusal:
                answer = problem_from(refusal)
            marks.append(clock())
            if answer is not None:
                ctx.short_circuited_by = stage.name
                return answer
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

    def run_after(self, response):
        ctx = g.get("gateway")
        if ctx is None:  # a failure before the context existed
            return response
        current = request._get_current_object()
        reached = ctx.stages_reached
        for position, stage in self.answering_stages:
            if stage.always_after or position < reached:
                response = stage.after(ctx, current, response)
        return response
