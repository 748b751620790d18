"""SendGrid Event Webhook -> delivery status of the outbox email it reports on.

SendGrid posts a JSON array of events ``{email, event, sg_message_id, sg_event_id,
timestamp}`` signed with ECDSA P-256 over timestamp + body. ``sg_message_id`` is the
X-Message-Id the send answered, followed by ``.filter...``; ``sg_event_id`` identifies
an event. Each event is its own unit of work, so one duplicate in a batch costs nothing
to the others.
"""
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import select

from ..models import OutboxMessage
from . import signatures
from .common import DUPLICATE, IGNORED, PROCESSED, NotConfigured, now, required_setting, tolerance
from .dedupe import Ignored, process_once

PROVIDER = "sendgrid"
# how far along its way an email is; a late, earlier-stage event never moves it back
STAGE = {"processed": 0, "deferred": 1, "delivered": 2, "bounce": 2, "dropped": 2,
         "open": 3, "click": 4, "spamreport": 5, "unsubscribe": 5, "group_unsubscribe": 5,
         "group_resubscribe": 5}


class SendgridEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    event = fields.String(required=True, validate=validate.Length(min=1, max=30))
    sg_event_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    sg_message_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    timestamp = fields.Integer(allow_none=True)


def verify(body, headers):
    encoded = required_setting(PROVIDER, "SENDGRID_WEBHOOK_PUBLIC_KEY")
    try:
        public_key = signatures.load_sendgrid_public_key(encoded)
    except ValueError:
        # a key that cannot be loaded is as unusable as none: a configuration fault
        raise NotConfigured(PROVIDER, "SENDGRID_WEBHOOK_PUBLIC_KEY (valid)") from None
    signatures.verify_sendgrid(public_key, body,
                               headers.get(signatures.SENDGRID_SIGNATURE_HEADER),
                               headers.get(signatures.SENDGRID_TIMESTAMP_HEADER),
                               now(), tolerance(PROVIDER))


def handle(document):
    events = SendgridEventSchema(many=True).load(document)
    counts = {PROCESSED: 0, DUPLICATE: 0, IGNORED: 0}
    for event in events:
        outcome = process_once(PROVIDER, event["sg_event_id"], event["event"],
                               lambda session, record, event=event: record_delivery(session, record, event))
        counts[outcome] += 1
    return {"status": PROCESSED, "events": counts}


def message_id_of(sg_message_id):
    """``<X-Message-Id>.filterdrecv-...`` -> ``<X-Message-Id>``."""
    return (sg_message_id or "").split(".", 1)[0]


def record_delivery(session, record, event):
    message_id = message_id_of(event.get("sg_message_id"))
    message = session.scalar(select(OutboxMessage).where(
        OutboxMessage.provider_message_id == message_id)) if message_id else None
    if message is None:
        raise Ignored(f"no outbox email has SendGrid message id {message_id!r}")
    record.company_id = message.company_id
    current = STAGE.get(message.delivery_status, -1)
    if STAGE.get(event["event"], current) >= current:
        message.delivery_status = event["event"]
