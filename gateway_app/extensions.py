"""Shared per-app state: the validated policy, the Redis client, the components the
pipeline's stages and the blueprints share, the pipeline, the readiness checks."""
from dataclasses import dataclass, field

from flask import current_app

from .readiness import ReadinessChecks

SERVICES = ("dashboard", "calls", "appointments", "customers", "analytics",
            "settings", "billing", "team")


@dataclass
class GatewayState:
    policy: dict
    redis: object | None          # redis.Redis, or None for the embedded in-process default
    services: tuple = SERVICES
    # redis_store.SharedRoundTrips: the worker's request-path Redis calls, one round trip at a time
    round_trips: object | None = None
    reads: object | None = None      # redis_store.BatchedReads: small keys every warm request reads
    identity: object | None = None   # identity.services.IdentityServices
    breakers: object | None = None   # breakers.BreakerRegistry
    pipeline: object | None = None
    files: object | None = None      # files.FileStore: uploads, exports, backups, recordings
    components: dict = field(default_factory=dict)  # lazily built helpers by name
    readiness: ReadinessChecks = field(default_factory=ReadinessChecks)  # filled by create_app


def gateway_state(app=None):
    return (app or current_app).extensions["gateway"]
