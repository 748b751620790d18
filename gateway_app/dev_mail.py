"""Development email: outside production and without SENDGRID_API_KEY, an email is kept in
a local sink instead of waiting in the outbox for a key that will never come.

The sink is the outbox row itself, marked delivered (``delivery_status`` "dev_mail",
a provider id of "dev-mail-<id>") when the email is queued, so no worker needs to run;
the log shows it whole (an invitation's token included), and
``GET /gateway/admin/dev-mail`` lists what was kept. In production an email without a
key keeps waiting for one (integrations/http.py, NOT_CONFIGURED_RETRY), never sunk.
"""
import logging

from flask import current_app
from sqlalchemy import select

from .db import utcnow
from .models import OutboxMessage

log = logging.getLogger("gateway.dev_mail")
DELIVERY_STATUS = "dev_mail"
REASON = "SENDGRID_API_KEY is unset outside production"


def sink_enabled(app=None):
    config = (app or current_app).config
    return not config.get("ENV_PRODUCTION") and not config.get("SENDGRID_API_KEY")


def keep(session, message):
    """Deliver the email ``message`` (just queued, in the caller's transaction) to the sink."""
    session.flush()   # its id
    message.status = "done"
    message.attempts = 1
    message.provider_message_id = f"dev-mail-{message.id}"
    message.delivery_status = DELIVERY_STATUS
    message.completed_at = utcnow()
    payload = message.payload
    # the whole email on one line: an invitation's token is in its text
    log.info("email kept in the development mail sink (GET /gateway/admin/dev-mail lists it)", extra={
        "outbox_id": message.id, "kind": message.kind, "reason": REASON, "to": payload["to"],
        "subject": payload["subject"], "category": payload.get("category"), "text": payload["text"]})
    return message


def kept_mail_query(kind):
    """The emails of outbox ``kind`` the sink kept (for the admin listing, newest first)."""
    return select(OutboxMessage).where(OutboxMessage.kind == kind,
                                       OutboxMessage.delivery_status == DELIVERY_STATUS)
