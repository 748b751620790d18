"""Stage 4: caching. L1 in the worker, L2 in Redis, invalidated by domain events.

A view opts in with ``gateway_policy(cache="calls")`` (plus ``cache_per_user=True`` when
its answer depends on the user). GET and HEAD only; the key is the company (and user),
the path and the normalised query, under the namespace's current generation tokens,
which are read from Redis on every lookup: that one round trip (shared by concurrent
requests of a worker) is what lets an L1 entry be served without ever outliving an
invalidation made by another worker. For a cached principal they are read ahead, in
the round trip that confirms the principal (``call_ahead``).
"""
from dataclasses import dataclass
from functools import lru_cache

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from werkzeug.datastructures import RequestCacheControl
from werkzeug.http import parse_cache_control_header, parse_set_header

from .. import events
from ..cache import (MISSING, CacheScope, InvalidationRules, Invalidator, TieredCache,
                     cache_metrics, capture, entry_key, refusal_reason, request_fingerprint,
                     serve, stale_key, strong_etag)
from ..policy_types import PolicyError, positive, strict
from ..responses import append_made_headers, header_names
from .base import Stage

CACHEABLE_METHODS = ("GET", "HEAD")
HIT_STATUS = {"L1": "HIT-L1", "L2": "HIT-L2"}   # X-Cache, by the tier that answered


@dataclass(slots=True)
class Lookup:
    """This request's cache decision, kept on the request context between ``before`` and ``after``."""
    scope: CacheScope
    fingerprint: str
    status: str = "MISS"          # HIT-L1 | HIT-L2 | MISS | BYPASS | STALE
    key: str | None = None        # entry key to store under; None: do not store
    refresh: bool = False         # the client asked for a fresh answer (no-cache)

    @property
    def answered_from_cache(self):
        return self.status not in ("MISS", "BYPASS")


def client_refuses_cache(request):
    """(whether the client asks for a fresh answer, whether it asks that none be stored)."""
    environ = request.environ  # a missing header costs an exception through request.headers
    if "HTTP_CACHE_CONTROL" not in environ and "HTTP_PRAGMA" not in environ:  # the usual case
        return False, False
    return refusal_in(environ.get("HTTP_CACHE_CONTROL"), environ.get("HTTP_PRAGMA", ""))


@lru_cache(maxsize=256)
def refusal_in(cache_control, pragma):
    """``client_refuses_cache`` for these header values, parsed as werkzeug's Request
    parses them; clients send a handful of values, over and over."""
    control = parse_cache_control_header(cache_control, None, RequestCacheControl)
    refuses = bool(control.no_cache or control.no_store or "no-cache" in parse_set_header(pragma))
    return refuses, bool(control.no_store)


def set_made(headers, names, name, value):
    """Set header ``name`` to a value the gateway made, replacing one the handler or a
    remote instance sent (``names``: the lower-cased names present)."""
    if name.lower() in names:
        headers[name] = value
    else:
        append_made_headers(headers, ((name, value),))


def conditional(response, request):
    """304 when the client's If-None-Match matches the response's ETag."""
    if "HTTP_IF_NONE_MATCH" not in request.environ:
        return response
    return response.make_conditional(request)


@strict
class NamespaceSchema(Schema):
    tier = fields.String(required=True, validate=validate.OneOf(["l1", "l2"]))
    ttl = fields.Integer(required=True, validate=positive)
    # entries are always per user, and an event naming a user invalidates only that user's
    user_scoped = fields.Boolean(load_default=False)


@strict
class L1Schema(Schema):
    max_entries = fields.Integer(required=True, validate=positive)


@strict
class CachingSchema(Schema):
    l1 = fields.Nested(L1Schema, required=True)
    namespaces = fields.Dict(keys=fields.String(), values=fields.Nested(NamespaceSchema),
                             required=True)
    stale_ttl = fields.Integer(required=True, validate=positive)
    max_entry_bytes = fields.Integer(load_default=262144, validate=positive)
    redis_retry_after_ms = fields.Integer(load_default=1000, validate=validate.Range(min=0, max=60000))
    invalidation = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                               required=True)
    cascades = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                           load_default=dict)

    @validates_schema
    def rules_name_known_namespaces(self, data, **kwargs):
        known = set(data.get("namespaces", {}))
        errors = {}
        for section in ("invalidation", "cascades"):
            for key, targets in data.get(section, {}).items():
                for target in targets:
                    # wildcard patterns (settings*, *) are allowed in rules
                    if "*" not in target and target not in known:
                        errors.setdefault(section, {})[key] = [f"unknown namespace {target!r}"]
        if errors:
            raise ValidationError(errors)


class CachingStage(Stage):
    name = "caching"
    section = "caching"   # of conf/gateway.yaml; its schema is above

    def __init__(self, app, config, redis_client, reads, round_trips=None):
        self.metrics = cache_metrics()
        self.tiers = TieredCache(app, config, redis_client, reads, self.metrics, round_trips)
        self.rules = InvalidationRules(config)
        self.invalidator = Invalidator(self.rules, self.tiers, self.metrics)
        self.max_entry_bytes = config["max_entry_bytes"]
        self.lookup_counters = {}   # (namespace, outcome, tier) -> counter child
        self.check_declarations(app)
        events.subscribe(app, self.invalidator.on_event)

    def check_declarations(self, app):
        """A view naming a namespace the policy lacks stops the start, naming both."""
        for endpoint, view in app.view_functions.items():
            namespace = getattr(view, "gateway_policy", {}).get("cache")
            if namespace and namespace not in self.tiers.namespaces:
                raise PolicyError(f"view {endpoint} declares cache={namespace!r}, which is not in "
                                  f"caching.namespaces ({', '.join(sorted(self.tiers.namespaces))})")

    # --- what a request may use ---------------------------------------------------

    def scope_for(self, ctx, request):
        return self.scope_of(ctx.route_policy, request.method, ctx.principal)

    def scope_of(self, route_policy, method, principal):
        namespace = route_policy.get("cache")
        if not namespace or method not in CACHEABLE_METHODS:
            return None
        per_user = (route_policy.get("cache_per_user", False)
                    or self.tiers.namespaces[namespace].get("user_scoped", False))
        return CacheScope.of(namespace, principal, per_user)

    def call_ahead(self, ctx, request, principal):
        """Read the generation tokens ``before`` will need for this principal's request;
        None when there is nothing to read or this stage must read them itself."""
        scope = self.scope_of(ctx.route_policy, request.method, principal)
        if scope is None or not self.tiers.can_read_ahead():
            return None
        return self.tiers.generations.reads, scope.generation_keys

    def count(self, scope, outcome, tier=None):
        """``tier``: where a hit came from; otherwise the namespace's configured tier."""
        key = (scope.namespace, outcome, tier)
        counter = self.lookup_counters.get(key)
        if counter is None:   # labels() costs a lock and a lookup: each series is kept
            label = (tier or self.tiers.tier_of(scope.namespace)).lower()
            counter = self.lookup_counters[key] = self.metrics["lookups"].labels(
                scope.namespace, label, outcome)
        counter.inc()

    # --- pipeline -----------------------------------------------------------------

    def before(self, ctx, request):
        scope = self.scope_for(ctx, request)
        if scope is None:
            return None
        lookup = ctx.cache_lookup = Lookup(scope, request_fingerprint(request))
        generations = self.generations_read_ahead(ctx, scope)
        if generations is None:
            generations = self.tiers.current_generations(scope.generation_keys)
        if generations is MISSING:
            return self.bypass(ctx, lookup)
        lookup.key = entry_key(scope, generations, lookup.fingerprint)
        refuses, no_store = client_refuses_cache(request)
        if refuses:
            # the client asks for a fresh answer: skip the lookup, store what the handler says
            if no_store:
                lookup.key = None
            lookup.refresh = True
            return self.bypass(ctx, lookup)
        stored, tier = self.tiers.get(scope.namespace, lookup.key)
        if stored is MISSING:
            lookup.key = None
            return self.bypass(ctx, lookup)
        if stored is None:
            ctx.cache_status = lookup.status = "MISS"
            self.count(scope, "miss")
            return None
        ctx.cache_status = lookup.status = HIT_STATUS[tier]
        self.count(scope, "hit", tier)
        return conditional(serve(stored, lookup.status), request)

    def generations_read_ahead(self, ctx, scope):
        ahead = ctx.ahead.get(self.name) if ctx.ahead else None
        if ahead is None or ahead[0] != scope.generation_keys:   # read for another principal
            return None
        return self.tiers.generations_from(ahead[1])

    def bypass(self, ctx, lookup):
        ctx.cache_status = lookup.status = "BYPASS"
        self.count(lookup.scope, "bypass")
        return None

    def after(self, ctx, request, response):
        lookup = ctx.cache_lookup
        if lookup is None or lookup.answered_from_cache:
            return response
        headers = response.headers
        names = header_names(headers)   # one pass, for every question below
        set_made(headers, names, "X-Cache", lookup.status)
        if refusal_reason(response, self.max_entry_bytes, names) is not None:
            return response
        etag = strong_etag(response.get_data())
        if lookup.key is not None:
            # the last good copy serves only the fallback of an upstream that fails (a
            # provider a view depends on, a remote service): kept only for those, and not
            # rewritten by a client's no-cache (the copy a normal request stores will do)
            kept_stale = (stale_key(lookup.scope, lookup.fingerprint)
                          if ctx.upstream and not lookup.refresh else None)
            # a no-cache refresh stores the answer only when it is not the one this
            # worker stored last, so the hash is all it costs
            if not (lookup.refresh and self.tiers.unchanged(lookup.scope.namespace, lookup.key, etag)):
                self.tiers.put(lookup.scope.namespace, lookup.key, kept_stale, capture(response, etag))
        set_made(headers, names, "ETag", etag)
        return conditional(response, request)

    # --- the last good copies, for the fallback (pipeline/fallback.py) ---------------

    def stale_response(self, ctx, request):
        """The last good copy of this request's cache key, marked STALE, or None."""
        scope = self.scope_for(ctx, request)
        if scope is None:
            return None
        # the key of the request as the client sent it, which a later stage may have
        # transformed since (pipeline/transforms.py)
        lookup = ctx.cache_lookup
        fingerprint = lookup.fingerprint if lookup is not None else request_fingerprint(request)
        stored = self.tiers.stale(stale_key(scope, fingerprint))
        if stored is None:
            return None
        ctx.cache_lookup = Lookup(scope, fingerprint, status="STALE")
        ctx.cache_status = "STALE"
        self.count(scope, "stale")
        return serve(stored, "STALE")
