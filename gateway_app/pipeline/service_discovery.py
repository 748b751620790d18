"""Stage 6: service discovery. A local service falls through to its blueprint; a remote
one is proxied to a healthy instance chosen round robin.

It runs after authentication, authorization, rate limiting and caching, so a remote
service keeps the gateway's credentials, permissions, limits and cache. When every
instance fails, the caching stage's last good copy is served, else 503 naming the
service.
"""
import re

import pybreaker
import requests
from flask import current_app
from marshmallow import Schema, fields, validate

from ..discovery.balancer import failover_order
from ..discovery.health import HealthMonitor
from ..discovery.proxy import (NoInstanceAnswered, UpstreamFailure, outbound_request,
                               send_to_instance, to_flask_response)
from ..discovery.registry import Registry
from ..extensions import SERVICES
from ..policy_types import SecretString, positive, strict
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
    read_timeout = fields.Float(required=True, validate=validate.Range(min=0.1))


@strict
class ServiceDiscoverySchema(Schema):
    health_check = fields.Nested(HealthCheckSchema, required=True)
    proxy = fields.Nested(ProxySchema, load_default=lambda: {"connect_timeout": 2.0, "read_timeout": 10.0})
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=fields.Nested(RegistryServiceSchema), required=True)


class ServiceDiscoveryStage(Stage):
    name = "service_discovery"
    section = "service_discovery"   # of conf/gateway.yaml; its schema is above

    def __init__(self, config, redis_client, breakers, fallback):
        self.breakers = breakers
        self.fallback = fallback
        self.registry = Registry(config, redis_client)
        self.monitor = HealthMonitor(self.registry, config["health_check"], redis_client)
        self.health_interval = config["health_check"]["interval"]
        self.connect_timeout = config["proxy"]["connect_timeout"]
        self.read_timeout = config["proxy"]["read_timeout"]
        self.signing_secrets = {name: spec.get("signing_secret")
                                for name, spec in config["services"].items()}
        self.http = requests.Session()   # pooled connections to the instances
        if any(self.registry.configured.values()):
            self.monitor.ensure_started()

    def remote_service(self, ctx, request):
        """The remote service this request goes to, or None when it is served locally.

        A path the gateway has no view for still belongs to a remote service when it
        sits under the service's prefix: the instances may serve more than the gateway
        declares.
        """
        if ctx.service is not None:
            return ctx.service if self.registry.is_remote(ctx.service) else None
        if request.endpoint is not None:
            return None
        match = SERVICE_PATH.match(request.path)
        if match and self.registry.is_remote(match.group(1)):
            return match.group(1)
        return None

    def before(self, ctx, request):
        service = self.remote_service(ctx, request)
        if service is None:
            return None
        if ctx.principal is None and not ctx.route_policy.get("public"):
            # an undeclared path skipped the authentication stage's check
            raise unauthorized("This endpoint needs an API key, a bearer token or a session.")
        ctx.service = service
        ctx.upstream = f"service:{service}"
        self.monitor.ensure_started()
        return self.forward(service, ctx, request)

    def forward(self, service, ctx, request):
        """One breaker per remote service: a service whose instances keep failing is not
        called at all while its breaker is open, and gets the fallback at once."""
        breaker = self.breakers.get(service)
        wait = breaker.rejecting()
        if wait is not None:
            return self.fallback.answer(ctx, request, service, wait, "its circuit breaker is open")
        outbound = outbound_request(request, ctx, self.signing_secrets.get(service))
        try:
            return breaker.call(self.first_answer, service, outbound)
        except NoInstanceAnswered as exc:
            current_app.logger.warning("service %s: no instance answered (%s)", service, exc)
            return self.fallback.answer(ctx, request, service, self.health_interval,
                                        "no healthy instance answered")
        except pybreaker.CircuitBreakerError:
            return self.fallback.answer(ctx, request, service, breaker.retry_after() or 1,
                                        "its circuit breaker is open")

    def first_answer(self, service, outbound):
        """The first instance's answer in round-robin order, failing over on faults."""
        failures = []
        for instance in failover_order(self.registry, service):
            try:
                upstream = send_to_instance(self.http, instance, outbound,
                                            self.connect_timeout, self.read_timeout)
            except UpstreamFailure as failure:
                # passive health: stop sending traffic until the next active check passes
                self.registry.record_health(service, instance.id, False, f"passive: {failure.detail}")
                failures.append(failure)
                continue
            return to_flask_response(current_app.response_class, upstream, instance)
        raise NoInstanceAnswered(failures)
