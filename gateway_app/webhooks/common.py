"""What every provider module needs: its settings, the verification clock, the outcome names."""
import logging
import time

from flask import current_app
from marshmallow import Schema, fields

from ..extensions import gateway_state
from ..policy_types import positive, strict

log = logging.getLogger("gateway.webhooks")

PROCESSED = "processed"
DUPLICATE = "duplicate"
IGNORED = "ignored"
STALE = "stale"


class NotConfigured(Exception):
    """The setting a provider's verification needs is unset: answer 503, never crash."""

    def __init__(self, provider, setting):
        super().__init__(f"{setting} is not set, so {provider} webhooks cannot be verified")
        self.provider = provider
        self.setting = setting


def required_setting(provider, name):
    value = current_app.config.get(name)
    if not value:
        raise NotConfigured(provider, name)
    return value


def now():
    """Seconds since the epoch; tests pin it with app.config["WEBHOOK_CLOCK"] (a callable)."""
    clock = current_app.config.get("WEBHOOK_CLOCK") or time.time
    return float(clock())


@strict
class WebhooksSchema(Schema):
    """How far a signed webhook's timestamp may be from our clock, either way (seconds)."""
    retell_tolerance = fields.Integer(load_default=300, validate=positive)
    stripe_tolerance = fields.Integer(load_default=300, validate=positive)
    sendgrid_tolerance = fields.Integer(load_default=600, validate=positive)


def tolerance(provider):
    """Accepted skew of a signed timestamp, either way (conf/gateway.yaml ``webhooks:``)."""
    return gateway_state().policy["webhooks"][f"{provider}_tolerance"]
