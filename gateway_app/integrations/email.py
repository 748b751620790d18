"""Outbox handler for ``sendgrid.email``: send one queued email through SendGrid."""
import os

from flask import current_app

from .http import client_for, outbox_delivery
from .sendgrid import SendgridClient

DEFAULT_FROM = "no-reply@voice-gateway.dev"


def sender_address():
    return (current_app.config.get("SENDGRID_FROM_EMAIL") or os.environ.get("SENDGRID_FROM_EMAIL")
            or DEFAULT_FROM)


def deliver_email(message):
    """Return SendGrid's X-Message-Id; the outbox stores it in ``provider_message_id``."""
    payload = message.payload
    with outbox_delivery():
        return client_for(SendgridClient).send(
            payload["to"], payload["subject"], payload["text"], sender_address(),
            category=payload.get("category"), html=payload.get("html"),
            custom_args={"outbox_id": message.id})
