"""Load and validate conf/gateway.yaml, the gateway's whole policy.

A bad policy must stop the start with a message naming the offending key, never
a traceback, so every section has a schema and errors are flattened to dotted paths.
Each section's schema sits beside the code that reads it (a stage's in its module of
pipeline/, as Kong keeps schema.lua beside handler.lua); this module composes them.
"""
import os

import yaml
from marshmallow import Schema, ValidationError, fields, validates_schema

from .files.schema import FilesSchema
from .integrations.schema import IntegrationsSchema
from .pipeline.authentication import AuthenticationSchema
from .pipeline.caching import CachingSchema
from .pipeline.circuit_breaker import CircuitBreakerSchema
from .pipeline.cors import CorsSchema
from .pipeline.metrics import MetricsSchema
from .pipeline.rate_limiting import RateLimitingSchema
from .pipeline.service_discovery import ServiceDiscoverySchema
from .pipeline.transform import TransformSchema
from .pipeline.transforms import TransformsSchema
from .policy_types import PolicyError, RateString, positive, strict
from .ratelimit.quotas import TierSchema
from .webhooks.common import WebhooksSchema

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "conf", "gateway.yaml")

__all__ = ["DEFAULT_PATH", "PolicyError", "PolicySchema", "RateString", "load_policy",
           "positive", "strict", "validate_policy"]


@strict
class PolicySchema(Schema):
    cors = fields.Nested(CorsSchema, load_default=lambda: CorsSchema().load({}))
    tiers = fields.Dict(keys=fields.String(), values=fields.Nested(TierSchema), required=True)
    authentication = fields.Nested(AuthenticationSchema, required=True)
    rate_limiting = fields.Nested(RateLimitingSchema, required=True)
    caching = fields.Nested(CachingSchema, required=True)
    circuit_breaker = fields.Nested(CircuitBreakerSchema, required=True)
    integrations = fields.Nested(IntegrationsSchema, required=True)
    service_discovery = fields.Nested(ServiceDiscoverySchema, required=True)
    transform = fields.Nested(TransformSchema, required=True)
    transforms = fields.Nested(TransformsSchema, load_default=lambda: TransformsSchema().load({}))
    metrics = fields.Nested(MetricsSchema, required=True)
    webhooks = fields.Nested(WebhooksSchema, load_default=lambda: WebhooksSchema().load({}))
    files = fields.Nested(FilesSchema, load_default=lambda: FilesSchema().load({}))

    @validates_schema
    def free_tier_exists(self, data, **kwargs):
        if "tiers" in data and "free" not in data["tiers"]:
            raise ValidationError({"tiers": {"free": ["the free tier is the base rate and is required"]}})

    @validates_schema
    def attachment_sizes_name_tiers(self, data, **kwargs):
        if "tiers" not in data or "files" not in data:
            return
        sizes = data["files"]["attachments"]["max_bytes"]
        errors = {tier: ["not a tier of the policy"] for tier in sorted(set(sizes) - set(data["tiers"]))}
        if "free" not in sizes:
            errors["free"] = ["the free tier's size is required (a tier not listed has it)"]
        if errors:
            raise ValidationError({"files": {"attachments": {"max_bytes": errors}}})


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
