"""Stage 3: rate limiting, the seed's five layers (ip, user, company, endpoint, resource).

Every quota that applies to a request is taken in one all-or-nothing step (see
gateway_app/ratelimit/storage.py): a request refused by one layer spends nothing of the
others. Anonymous requests meet the ip layer only; routes declaring ``exempt_limits``
(probes, metrics, signed webhooks, the operator API) and the configured exempt paths
meet none, so a provider's webhook burst or a health checker is never throttled.

For a cached principal the quotas are taken ahead, in the round trip that confirms the
principal (Stage.call_ahead). That acquisition is this stage's decision when the
request reaches it with the same quotas; otherwise (the principal had changed, or the
request was refused before this stage: 401, 403) what it took is given back, so every
request still spends exactly its own quotas once.
"""
import math

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..errors import GatewayProblem
from ..extensions import SERVICES
from ..policy_types import PolicyError, RateString, strict
from ..ratelimit import GatewayLimiter, LayerPolicies, LimiterUnavailable
from ..ratelimit.headers import limit_header
from ..responses import append_made_headers
from .base import Stage


@strict
class LimitListSchema(Schema):
    limits = fields.List(RateString(), required=True, validate=validate.Length(min=1))
    # policy names for the RateLimit-Policy header, one per limit (default: the layer's name)
    names = fields.List(fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_-]*$")),
                        load_default=list)

    @validates_schema
    def one_name_per_limit(self, data, **kwargs):
        names = data.get("names") or []
        if names and len(names) != len(data.get("limits", [])):
            raise ValidationError({"names": ["give one name per limit, or none"]})


@strict
class EndpointLayerSchema(Schema):
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=RateString(), required=True)


@strict
class ResourceLayerSchema(Schema):
    resources = fields.Dict(keys=fields.String(), values=RateString(), required=True)


@strict
class LayersSchema(Schema):
    ip = fields.Nested(LimitListSchema, required=True)
    user = fields.Nested(LimitListSchema, required=True)
    company = fields.Nested(LimitListSchema, required=True)
    endpoint = fields.Nested(EndpointLayerSchema, required=True)
    resource = fields.Nested(ResourceLayerSchema, required=True)


@strict
class RateLimitingSchema(Schema):
    fail_open = fields.Boolean(required=True)
    storage_retry_interval = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=300))
    layers = fields.Nested(LayersSchema, required=True)
    exempt_paths = fields.List(fields.String(), required=True)
    # wrong admin tokens an address may send (the admin API is otherwise not limited)
    admin_refusals = RateString(load_default="10/minute")


class RateLimitingStage(Stage):
    name = "rate_limiting"
    section = "rate_limiting"   # of conf/gateway.yaml; its schema is above
    always_after = True         # to give back quotas taken ahead for a request refused before

    def __init__(self, app, config, tiers, redis_client, round_trips):
        self.policies = LayerPolicies(config, tiers)
        self.limiter = GatewayLimiter(redis_client, round_trips, fail_open=config["fail_open"],
                                      retry_interval=config["storage_retry_interval"])
        self.exempt_paths = tuple(config["exempt_paths"])
        self.check_declared_resources(app)

    def check_declared_resources(self, app):
        for endpoint, view in app.view_functions.items():
            resource = getattr(view, "gateway_policy", {}).get("resource")
            if resource is not None and resource not in self.policies.resources:
                raise PolicyError(f"view {endpoint} declares resource {resource!r}, which "
                                 f"rate_limiting.layers.resource.resources does not define")

    def applies_to(self, ctx, request):
        """Whether ``request`` spends quota."""
        return not (ctx.route_policy.get("exempt_limits") or request.path.startswith(self.exempt_paths))

    def call_ahead(self, ctx, request, principal):
        if not self.applies_to(ctx, request) or not self.limiter.shared_available:
            return None
        quota_set = self.policies.quota_set(ctx.client_ip, principal, ctx.service,
                                            ctx.route_policy.get("resource"))
        if self.limiter.shared.spans_slots(quota_set.entries):   # a Cluster: one call per slot
            return self.limiter.shared.in_parts, quota_set.entries
        return self.limiter.shared, quota_set.entries

    def spend_on_refusal(self, ctx, admin_token=None):
        """A request refused for its credential spends its address's ip quotas (the
        seed's layer 1, abuse protection), a wrong admin token its admin refusals; 429
        instead once they are exhausted. ``admin_token``: whether an admin token was
        refused (default: whether the route is the admin API's)."""
        quota_set = self.refusal_quotas(ctx, admin_token)
        try:
            decision = self.limiter.acquire(quota_set)
        except LimiterUnavailable:
            return   # the refusal stands on its own
        self.apply(ctx, decision)

    def refuse_when_refusals_exhausted(self, ctx, admin_token=None):
        """429 for an admin request from an address whose wrong tokens exhausted its admin
        refusals, before its token is looked at: the admin API is exempt from limits, so
        a right guess would otherwise tell itself from the wrong ones."""
        decision = self.limiter.peek(self.refusal_quotas(ctx, admin_token))
        if decision is not None and not decision.allowed:
            self.refuse(ctx, decision)

    def refusal_quotas(self, ctx, admin_token=None):
        if ctx.route_policy.get("admin") if admin_token is None else admin_token:
            return self.policies.admin_refusals(ctx.client_ip)
        return self.policies.quota_set(ctx.client_ip, None, None, None)   # the ip layer

    def taken_ahead(self, ctx, quota_set):
        """The decision of the acquisition made ahead for ``quota_set``, or None."""
        ahead = ctx.ahead.pop(self.name, None) if ctx.ahead else None
        if ahead is None:
            return None
        entries, got = ahead
        if isinstance(got, Exception):   # Redis refused: ``acquire`` decides, outage included
            return None
        if entries != quota_set.entries:   # taken for the principal as cached, since changed
            self.limiter.give_back(entries, got)
            return None
        return self.limiter.decision_from(quota_set, got)

    def before(self, ctx, request):
        if not self.applies_to(ctx, request):
            return None
        quota_set = self.policies.for_request(ctx)
        try:
            decision = self.taken_ahead(ctx, quota_set) or self.limiter.acquire(quota_set)
        except LimiterUnavailable:
            raise GatewayProblem(
                503, "Service Unavailable", "Rate limiting is unavailable; try again shortly.",
                problem_type="rate-limiter-unavailable",
                headers={"Retry-After": str(math.ceil(self.limiter.retry_interval))}) from None
        self.apply(ctx, decision)
        return None

    def apply(self, ctx, decision):
        """The decision's headers for the response; 429 if it refuses."""
        if not decision.allowed:
            self.refuse(ctx, decision)
        ctx.rate_limit_headers = (("RateLimit-Policy", decision.quota_set.policy_header),
                                  ("RateLimit", limit_header(*decision.closest_to_exhaustion())))

    def refuse(self, ctx, decision):
        quota, window = decision.breached()
        self.limiter.metrics["rejections"].labels(quota.layer).inc()
        ctx.rate_limit_headers = (("RateLimit-Policy", decision.quota_set.policy_header),
                                  ("RateLimit", limit_header(quota, window)))
        raise GatewayProblem(
            429, "Too Many Requests",
            f"The {quota.layer} rate limit ({quota.name}: {quota.limit} per {quota.window} s) "
            f"is exhausted; retry in {window.retry_after} s.",
            problem_type="rate-limited", headers={"Retry-After": str(window.retry_after)},
            layer=quota.layer, policy=quota.name, limit=quota.limit, window=quota.window,
            retry_after=window.retry_after)

    def after(self, ctx, request, response):
        ahead = ctx.ahead.pop(self.name, None) if ctx.ahead else None
        if ahead is not None and not isinstance(ahead[1], Exception):
            self.limiter.give_back(*ahead)   # the request was refused before this stage
        # appended: a response never carries them before this (a remote instance's are not
        # returned, discovery/proxy.py, nor kept in a cached copy, cache/entries.py)
        if ctx.rate_limit_headers:
            append_made_headers(response.headers, ctx.rate_limit_headers)
        return response

    def reset(self, layer, subject, company_id=None):
        """Forget ``subject``'s counts in ``layer``; returns the policy names cleared.
        ``company_id``: whose user or API key ``subject`` is (user and endpoint layers)."""
        quotas = self.policies.for_subject(layer, subject, company_id)
        if quotas and layer == "ip":   # an address's reset frees its wrong admin tokens' budget too
            quotas += self.policies.admin_refusals(subject).quotas
        self.limiter.reset(quotas)
        return [quota.name for quota in quotas]
