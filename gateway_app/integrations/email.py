"""Outbox handler for ``sendgrid.email``: send one queued email through SendGrid."""
from flask import current_app

from .http import client_for, outbox_delivery
from .sendgrid import SendgridClient



def sender_address():
    return current_app.config["SENDGRID_FROM_EMAIL"]


def deliver_email(message):
    """Return SendGrid's X-Message-Id; the outbox stores it in ``provider_message_id``."""
    payload = message.payload
    with outbox_delivery():
        return client_for(SendgridClient).send(
            payload["to"], payload["subject"], payload["text"], sender_address(),
            category=payload.get("category"), html=payload.get("html"),
            custom_args={"outbox_id": message.id})
