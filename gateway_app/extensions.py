"""Shared per-app state: the validated policy, the Redis client, the pipeline, the readiness checks."""
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
    pipeline: object | None = None
    components: dict = field(default_factory=dict)  # stage-owned helpers by name
    readiness: ReadinessChecks = field(default_factory=ReadinessChecks)  # filled by create_app


def gateway_state(app=None):
    return (app or current_app).extensions["gateway"]
