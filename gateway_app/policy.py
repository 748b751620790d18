"""Load and validate conf/gateway.yaml, the gateway's whole policy.

A bad policy must stop the start with a message naming the offending key, never
a traceback, so every section has a schema and errors are flattened to dotted paths.
"""
import os

import yaml
from limits import parse as parse_rate
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "conf", "gateway.yaml")
SERVICES = ("dashboard", "calls", "appointments", "customers", "analytics",
            "settings", "billing", "team")


class PolicyError(Exception):
    """The policy file is missing, unreadable or invalid; the message names the key."""


class RateString(fields.String):
    """A flask-limiter rate such as ``50/minute``."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_rate(text)
        except ValueError:
            raise ValidationError(f"not a rate limit: {text!r} (expected e.g. '100/hour')")
        return text


def _strict(cls):
    cls.Meta = type("Meta", (), {"unknown": "raise"})
    return cls


positive = validate.Range(min=1)


@_strict
class TierSchema(Schema):
    multiplier = fields.Integer(required=True, validate=positive)


@_strict
class AuthenticationSchema(Schema):
    access_token_ttl = fields.Integer(required=True, validate=positive)
    refresh_token_ttl = fields.Integer(required=True, validate=positive)
    session_ttl = fields.Integer(required=True, validate=positive)
    issuer = fields.String(required=True, validate=validate.Length(min=1))
    audience = fields.String(required=True, validate=validate.Length(min=1))
    principal_cache_ttl = fields.Integer(required=True, validate=validate.Range(min=0, max=3600))
    failed_login_limit = RateString(required=True)
    api_key_last_used_interval = fields.Integer(required=True, validate=positive)
    invite_ttl = fields.Integer(required=True, validate=positive)


@_strict
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


@_strict
class EndpointLayerSchema(Schema):
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=RateString(), required=True)


@_strict
class ResourceLayerSchema(Schema):
    resources = fields.Dict(keys=fields.String(), values=RateString(), required=True)


@_strict
class LayersSchema(Schema):
    ip = fields.Nested(LimitListSchema, required=True)
    user = fields.Nested(LimitListSchema, required=True)
    company = fields.Nested(LimitListSchema, required=True)
    endpoint = fields.Nested(EndpointLayerSchema, required=True)
    resource = fields.Nested(ResourceLayerSchema, required=True)


@_strict
class RateLimitingSchema(Schema):
    strategy = fields.String(required=True, validate=validate.OneOf(
        ["sliding-window-counter", "fixed-window", "moving-window"]))
    fail_open = fields.Boolean(required=True)
    storage_retry_interval = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=300))
    layers = fields.Nested(LayersSchema, required=True)
    exempt_paths = fields.List(fields.String(), required=True)


@_strict
class NamespaceSchema(Schema):
    tier = fields.String(required=True, validate=validate.OneOf(["l1", "l2"]))
    ttl = fields.Integer(required=True, validate=positive)
    # entries are always per user, and an event naming a user invalidates only that user's
    user_scoped = fields.Boolean(load_default=False)


@_strict
class L1Schema(Schema):
    max_entries = fields.Integer(required=True, validate=positive)


@_strict
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


@_strict
class BreakerSchema(Schema):
    failure_threshold = fields.Integer(validate=positive)
    failure_window = fields.Integer(validate=positive)
    reset_timeout = fields.Integer(validate=positive)
    half_open_probes = fields.Integer(validate=positive)


@_strict
class CircuitBreakerSchema(Schema):
    defaults = fields.Nested(BreakerSchema, required=True)
    services = fields.Dict(keys=fields.String(), values=fields.Nested(BreakerSchema),
                           required=True)

    @validates_schema
    def defaults_complete(self, data, **kwargs):
        missing = [k for k in BreakerSchema().fields if k not in data.get("defaults", {})]
        if missing:
            raise ValidationError({"defaults": {k: ["Missing data for required field."]
                                                for k in missing}})


@_strict
class ProviderTimeoutsSchema(Schema):
    connect_timeout = fields.Float(validate=validate.Range(min=0.05))
    read_timeout = fields.Float(validate=validate.Range(min=0.05))
    retries = fields.Integer(validate=validate.Range(min=0, max=5))
    retry_backoff = fields.Float(validate=validate.Range(min=0))
    pool_size = fields.Integer(validate=positive)


@_strict
class IntegrationsSchema(Schema):
    defaults = fields.Nested(ProviderTimeoutsSchema, required=True)
    providers = fields.Dict(keys=fields.String(validate=validate.OneOf(
        ["calcom", "retell", "stripe", "sendgrid"])), values=fields.Nested(ProviderTimeoutsSchema),
        load_default=dict)
    booking_confirm_timeout = fields.Float(required=True, validate=validate.Range(min=0.1))
    stripe_meter_event = fields.String(required=True, validate=validate.Length(min=1, max=100))
    usage_report_interval = fields.Integer(required=True, validate=positive)

    @validates_schema
    def defaults_complete(self, data, **kwargs):
        missing = [k for k in ProviderTimeoutsSchema().fields if k not in data.get("defaults", {})]
        if missing:
            raise ValidationError({"defaults": {k: ["Missing data for required field."]
                                                for k in missing}})


@_strict
class HealthCheckSchema(Schema):
    path = fields.String(required=True)
    interval = fields.Integer(required=True, validate=positive)
    timeout = fields.Float(required=True, validate=validate.Range(min=0.1))


@_strict
class RegistryServiceSchema(Schema):
    version = fields.String(required=True)
    instances = fields.List(fields.String(validate=validate.Regexp(
        r"^https?://[^/\s]+(:\d+)?/?$|^[^/\s:]+:\d+$", error="expected host:port or http(s)://host:port")),
        load_default=list)


@_strict
class ProxySchema(Schema):
    connect_timeout = fields.Float(required=True, validate=validate.Range(min=0.05))
    read_timeout = fields.Float(required=True, validate=validate.Range(min=0.1))


@_strict
class ServiceDiscoverySchema(Schema):
    health_check = fields.Nested(HealthCheckSchema, required=True)
    proxy = fields.Nested(ProxySchema, load_default=lambda: {"connect_timeout": 2.0, "read_timeout": 10.0})
    load_balancing = fields.String(required=True, validate=validate.OneOf(["round_robin"]))
    services = fields.Dict(keys=fields.String(validate=validate.OneOf(SERVICES)),
                           values=fields.Nested(RegistryServiceSchema), required=True)


@_strict
class TransformSchema(Schema):
    max_content_length = fields.Integer(required=True, validate=positive)
    # checked here because the transform stage adds them without werkzeug's check
    security_headers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]+$")),
        values=fields.String(validate=validate.Regexp(r"^[^\r\n]*$")), load_default=dict)


@_strict
class MetricsSchema(Schema):
    latency_buckets = fields.List(fields.Float(validate=validate.Range(min=0, min_inclusive=False)),
                                  required=True, validate=validate.Length(min=1))


@_strict
class WebhooksSchema(Schema):
    """How far a signed webhook's timestamp may be from our clock, either way (seconds)."""
    retell_tolerance = fields.Integer(load_default=300, validate=positive)
    stripe_tolerance = fields.Integer(load_default=300, validate=positive)
    sendgrid_tolerance = fields.Integer(load_default=600, validate=positive)


@_strict
class PolicySchema(Schema):
    tiers = fields.Dict(keys=fields.String(), values=fields.Nested(TierSchema), required=True)
    authentication = fields.Nested(AuthenticationSchema, required=True)
    rate_limiting = fields.Nested(RateLimitingSchema, required=True)
    caching = fields.Nested(CachingSchema, required=True)
    circuit_breaker = fields.Nested(CircuitBreakerSchema, required=True)
    integrations = fields.Nested(IntegrationsSchema, required=True)
    service_discovery = fields.Nested(ServiceDiscoverySchema, required=True)
    transform = fields.Nested(TransformSchema, required=True)
    metrics = fields.Nested(MetricsSchema, required=True)
    webhooks = fields.Nested(WebhooksSchema, load_default=lambda: WebhooksSchema().load({}))

    @validates_schema
    def free_tier_exists(self, data, **kwargs):
        if "tiers" in data and "free" not in data["tiers"]:
            raise ValidationError({"tiers": {"free": ["the free tier is the base rate and is required"]}})


def _flatten(messages, prefix=""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        yield f"{prefix}: {'; '.join(messages)}"
    elif isinstance(messages, list):
        for item in messages:
            yield from _flatten(item, prefix)
    else:
        yield f"{prefix}: {messages}"


def load_policy(path=None):
    """Return the validated policy as plain dicts, or raise PolicyError naming the key."""
    path = path or os.environ.get("GATEWAY_CONFIG") or DEFAULT_PATH
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from None
    return validate_policy(raw, source=path)


def validate_policy(raw, source="policy"):
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    try:
        return PolicySchema().load(raw)
    except ValidationError as exc:
        lines = sorted(_flatten(exc.messages))
        raise PolicyError(f"{source} is invalid:\n  " + "\n  ".join(lines)) from None
