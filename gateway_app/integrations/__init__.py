"""Provider clients (Cal.com, Retell, Stripe, SendGrid), each behind its circuit breaker.

``register(app)`` (called from create_app) adds each provider to /ready as an
informational check ("ok", "circuit open" or "not configured") and registers the
outbox handlers that deliver to the providers. The error handlers that turn provider
exceptions into problems belong to the circuit-breaker stage.
"""
from flask import current_app

from ..breakers import breaker_for
from .calcom import CalcomClient
from .http import NotConfigured, ProviderRejected, UpstreamUnavailable, client_for
from .retell import RetellClient
from .sendgrid import SendgridClient
from .stripe import StripeClient

CLIENTS = {cls.service: cls for cls in (CalcomClient, RetellClient, StripeClient, SendgridClient)}


def client(service, app=None):
    return client_for(CLIENTS[service], app)


def readiness_check(service):
    def check():
        if not current_app.config.get(f"{service.upper()}_API_KEY"):
            return "not configured"
        state = breaker_for(service).current_state
        return "ok" if state == "closed" else f"circuit {state}"
    check.__name__ = f"check_{service}"
    return check


def register(app):
    """Report each integration in /ready (never making the gateway unready); outbox handlers."""
    # imported here: these modules import the integrations package themselves
    from blueprints.ops import INFORMATIONAL_CHECKS, READINESS_CHECKS
    for service in CLIENTS:
        name = f"integration:{service}"
        READINESS_CHECKS[name] = readiness_check(service)
        INFORMATIONAL_CHECKS.add(name)
    from .. import outbox
    from ..bookings import BOOKING_KIND, CANCELLATION_KIND, deliver_booking, deliver_cancellation
    from ..notifications import EMAIL_KIND
    from .email import deliver_email
    from .usage_reporting import METER_EVENT_KIND, deliver_meter_event
    outbox.register_handler(BOOKING_KIND, deliver_booking)
    outbox.register_handler(CANCELLATION_KIND, deliver_cancellation)
    outbox.register_handler(EMAIL_KIND, deliver_email)
    outbox.register_handler(METER_EVENT_KIND, deliver_meter_event)


__all__ = ["CalcomClient", "RetellClient", "StripeClient", "SendgridClient", "client",
           "register", "NotConfigured", "ProviderRejected", "UpstreamUnavailable"]
