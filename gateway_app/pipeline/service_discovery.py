"""Stage 6: service discovery. A local service falls through to its blueprint; a remote
one is proxied to a healthy instance chosen round robin.

It runs after authentication, authorization, rate limiting and caching, so a remote
service keeps the gateway's credentials, permissions, limits and cache. When no
instance answers, the caching stage's last good copy is served, else 503 naming the
service.

A proxied request makes no Redis call of its own in steady state: the versions of the
service's registry entry and of its breaker are read in the round trip the
authentication stage makes for a cached principal (``call_ahead``), and the worker's
copies of both are read again only when a version moved (discovery/registry.py,
breakers.py).
"""
import re
import time

import pybreaker
from flask import current_app
from marshmallow import Schema, fields, validate
from redis.exceptions import RedisError

from ..discovery.balancer import WorkerRotation
from ..discovery.health import HealthMonitor
from ..discovery.metrics import UpstreamMetrics
from ..discovery.proxy import (NoInstanceAnswered, UpstreamFailure, UpstreamPools,
                               outbound_request, to_flask_response)
from ..discovery.registry import UNREAD, Registry
from ..extensions import SERVICES
from ..policy_types import SecretString, positive, strict
from ..responses import GatewayResponse
from .authentication import unauthorized
from .base import Stage

SERVICE_PATH = re.compile(r"^/api/v1/([a-z]+)(/|$)")


@strict
class HealthCheckSchema(Schema):
    path = fields.String(required=True)
    interval = fields.Integer(required=True, validate=positive)
    timeout = fields.Float(required=True, validate=validate.Range(min=0.1))


@strict
class RegistryServiceSchema(Schema):
    version = fields.String(required=True)
    # signs the identity the gateway passes to the service's instances (discovery/signing.py)
    signing_secret = SecretString(load_default=None, validate=validate.Length(min=16))
    instances = fields.List(fields.String(validate=validate.Regexp(
        r"^https?://[^/\s]+(:\d+)?/?$|^[^/\s:]+:\d+$", error="expected host:port or http(s)://host:port")),
        load_default=list)


@strict
class ProxySchema(Schema):
    connect_timeout = fields.Float(required=True, validate=validate.Range(min=0.05))
    # the longest wait for the instance's answer, and between two blocks of its body
    read_timeout = fields.Float(required=True, validate=validate.Range(min=0.1))
    # answers with a Content-Length up to this are kept whole (the caching stage may store
    # them); larger or unsized ones are streamed to the client and never cached
    buffer_bytes = fields.Integer(load_default=262144, validate=validate.Range(min=0))


@strict
class PassiveSchema(Schema):
    # consecutive failed requests (connect failure, timeout, 5xx) one worker sees before
    # the instance is taken out of every worker's rotation until an active check passes
    consecutive_failures = fields.Integer(load_default=3, validate=positive)


@strict
class ServiceDiscoverySchema(Schema):
    health_check = fields.Nested(HealthCheckSchema, required=True)
    proxy = fields.Nested(ProxySchema, load_default=lambda: {"connect_timeout": 2.0, "read_timeout": 10.0,
                                                             "buffer_bytes": 262144})
    passive = fields.Nested(PassiveSchema, load_default=lambda: {"consecutive_failures": 3})
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=fields.Nested(RegistryServiceSchema), required=True)


class ServiceDiscoveryStage(Stage):
    name = "service_discovery"
    section = "service_discovery"   # of conf/gateway.yaml; its schema is above

    def __init__(self, config, redis_client, breakers, fallback, reads=None, pool_size=200,
                 response_class=GatewayResponse):
        self.breakers = breakers
        # the app's response class, given at build time: no look-up through Flask's
        # application context for each proxied answer
        self.response_class = response_class
        self.fallback = fallback
        self.reads = reads if redis_client is not None else None   # the request path's shared MGET
        self.metrics = UpstreamMetrics()
        self.registry = Registry(config, redis_client)
        self.monitor = HealthMonitor(self.registry, config["health_check"], redis_client,
                                     on_result=self.metrics.health)
        self.health_interval = config["health_check"]["interval"]
        self.pools = UpstreamPools(pool_size, config["proxy"]["connect_timeout"],
                                   config["proxy"]["read_timeout"], config["proxy"]["buffer_bytes"])
        self.ejection_threshold = config["passive"]["consecutive_failures"]
        self.failure_streaks = {}    # (service, instance id) -> consecutive failures this worker saw
        self.rotation = WorkerRotation()
        self.keys_of = {}            # service -> the keys of its registry and breaker versions
        self.last_views = {}         # service -> the copy its last request routed from
        self.signing_secrets = {name: spec.get("signing_secret")
                                for name, spec in config["services"].items()}
        if any(self.registry.configured.values()):
            self.monitor.ensure_started()

    def candidate(self, ctx, request):
        """The service a request belongs to, if it may be remote: its view's, or, for a path
        the gateway has no view for, the service whose prefix it sits under (the
        instances may serve more than the gateway declares)."""
        if ctx.service is not None:
            return ctx.service if self.registry.knows(ctx.service) else None
        if request.endpoint is not None:
            return None
        match = SERVICE_PATH.match(request.path)
        if match and self.registry.knows(match.group(1)):
            return match.group(1)
        return None

    def version_keys(self, service):
        keys = self.keys_of.get(service)
        if keys is None:
            keys = self.keys_of[service] = [self.registry.version_key(service),
                                            self.breakers.get(service).storage.version_key()]
        return keys

    def call_ahead(self, ctx, request, principal):
        """Read the versions of a remote service's registry entry and breaker in the
        round trip that confirms the principal."""
        if self.reads is None:
            return None
        service = self.candidate(ctx, request)
        if service is None or not self.registry.believed_remote(service):
            return None
        return self.reads, self.version_keys(service)

    def current_versions(self, ctx, service):
        """(registry version, breaker version) read after this request began, or
        (UNREAD, None) without Redis or when Redis fails."""
        if self.reads is None:
            return UNREAD, None
        keys = self.version_keys(service)
        ahead = ctx.ahead.get(self.name) if ctx.ahead else None
        if ahead is not None and ahead[0] == keys and not isinstance(ahead[1], Exception):
            return tuple(ahead[1])
        try:
            return tuple(self.reads.read(keys))
        except (RedisError, OSError) as exc:
            current_app.logger.warning("service discovery: versions unread (%s)", exc)
            return UNREAD, None

    def before(self, ctx, request):
        service = self.candidate(ctx, request)
        if service is None:
            return None
        remote = self.registry.believed_remote(service)
        self.note_copy(service)
        if not remote:
            return None
        registry_version, breaker_version = self.current_versions(ctx, service)
        view = self.registry.view(service, registry_version)
        self.note_copy(service)
        if not view.instances:   # its last instance was removed: local again
            return None
        if breaker_version is not None or registry_version is not UNREAD:
            self.breakers.get(service).storage.observe(breaker_version)
        if ctx.principal is None and not ctx.route_policy.get("public"):
            # an undeclared path skipped the authentication stage's check
            raise unauthorized("This endpoint needs an API key, a bearer token or a session.")
        ctx.service = service
        ctx.upstream = f"service:{service}"
        self.monitor.ensure_started()
        return self.forward(service, view, ctx, request)

    def note_copy(self, service):
        """On a new copy of ``service``, close the kept connections of removed instances."""
        view = self.registry.views.get(service)
        if view is self.last_views.get(service):
            return
        self.last_views[service] = view
        self.pools.keep_only({instance.url for known in self.registry.views.values()
                              for instance in known.instances})

    def routable(self, service, view):
        """The view's healthy instances; instances nobody has checked yet are checked
        now when none is healthy, else in the background."""
        if view.pending:
            if view.routable:
                self.monitor.check_soon(service, view.pending)
            else:
                self.monitor.check(service, view.pending)
                view = self.registry.refresh(service)
        return view

    def forward(self, service, view, ctx, request):
        """One breaker per remote service: a service whose instances keep failing is not
        called at all while its breaker is open, and gets the fallback at once."""
        breaker = self.breakers.get(service)
        wait = breaker.rejecting()
        if wait is not None:
            return self.fallback.answer(ctx, request, service, wait, "its circuit breaker is open")
        outbound = outbound_request(request, ctx, self.signing_secrets.get(service))
        try:
            return breaker.call(self.first_answer, service, self.routable(service, view), outbound)
        except NoInstanceAnswered as exc:
            current_app.logger.warning("service %s: no instance answered (%s)", service, exc)
            return self.fallback.answer(ctx, request, service, self.health_interval,
                                        "no healthy instance answered")
        except pybreaker.CircuitBreakerError:
            return self.fallback.answer(ctx, request, service, breaker.retry_after() or 1,
                                        "its circuit breaker is open")

    def first_answer(self, service, view, outbound):
        """The answer of the instance whose turn it is. An idempotent request (without a
        body) goes on to the next instance when the connection could not be made; any
        other failure ends the request."""
        failures = []
        if outbound.body is not None:
            outbound.body = CountingReader(outbound.body, self.metrics.counter_of_bytes(service, "sent"))
        for instance in self.rotation.order(service, view):
            started = time.perf_counter()
            try:
                answer = self.pools.send(instance, outbound)
                self.metrics.answered(service, instance.id, answer.status, time.perf_counter() - started)
                response = to_flask_response(self.response_class, answer, instance,
                                             self.pools.buffer_bytes,
                                             self.metrics.counter_of_bytes(service, "received"))
            except UpstreamFailure as failure:
                self.metrics.answered(service, instance.id, outcome_of(failure))
                self.failed(service, instance, failure)
                failures.append(failure)
                if failure.connect and outbound.may_retry:
                    continue
                break
            self.failure_streaks.pop((service, instance.id), None)
            return response
        raise NoInstanceAnswered(failures)

    def failed(self, service, instance, failure):
        """Passive health: after ``consecutive_failures`` in a row, the instance leaves
        every worker's rotation until an active check passes."""
        streak = self.failure_streaks.get((service, instance.id), 0) + 1
        self.failure_streaks[(service, instance.id)] = streak
        if streak < self.ejection_threshold:
            return
        self.failure_streaks.pop((service, instance.id), None)
        if self.registry.record_health(service, instance.id, False, f"passive: {failure.detail}"):
            self.metrics.ejected(service, instance.id)
            self.metrics.health(service, instance.id, False)
            current_app.logger.warning("service %s: instance %s ejected after %d failed requests (%s)",
                                       service, instance.url, streak, failure.detail)


def outcome_of(failure):
    if failure.connect:
        return "connect-failed"
    if "Timeout" in failure.detail:
        return "timeout"
    return failure.detail.removeprefix("answered ") if failure.detail.startswith("answered ") else "error"


class CountingReader:
    """The client's body as the proxy reads it on, counted as it goes."""

    def __init__(self, stream, count):
        self.stream = stream
        self.count = count

    def read(self, size=-1):
        block = self.stream.read(size)
        if block:
            self.count(len(block))
        return block
