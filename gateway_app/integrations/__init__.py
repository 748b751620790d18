"""Provider clients (Cal.com, Retell, Stripe, SendGrid), each behind its circuit breaker.

create_app adds each provider to /ready with ``readiness_check`` and registers the
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


__all__ = ["CalcomClient", "RetellClient", "StripeClient", "SendgridClient", "client",
           "readiness_check", "NotConfigured", "ProviderRejected", "UpstreamUnavailable"]
