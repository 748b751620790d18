"""Shared per-app state: the validated policy, the Redis client and the pipeline."""
from dataclasses import dataclass, field

from flask import current_app

SERVICES = ("dashboard", "calls", "appointments", "customers", "analytics",
            "settings", "billing", "team")


@dataclass
class GatewayState:
    policy: dict
    redis: object | None          # redis.Redis, or None for the embedded in-process default
    services: tuple = SERVICES
    pipeline: object | None = None
    components: dict = field(default_factory=dict)  # stage-owned helpers by name


def gateway_state(app=None):
    return (app or current_app).extensions["gateway"]
