"""POST /webhooks/sendgrid: SendGrid Event Webhook batches, ECDSA-signed, through HTTP."""
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.models import OutboxMessage, WebhookEvent
from gateway_app.notifications import queue_email
from tests.conftest import WEBHOOK_NOW, build_app, sign_up
from tests.support.queries import count_rows

X_MESSAGE_ID = "W86EgYT6SQKk0lRflfLRsA"
SG_MESSAGE_ID = X_MESSAGE_ID + ".filterdrecv-5645d9c87f-78xgx-1-5FC5F5B8-1B.0"


def sendgrid_event(event, sg_event_id, sg_message_id=SG_MESSAGE_ID, **extra):
    """Shaped like one entry of SendGrid's Event Webhook array."""
    entry = {"email": "jane@example.com", "timestamp": int(WEBHOOK_NOW) - 30,
             "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
             "category": ["appointment_reminder"], "sg_event_id": sg_event_id,
             "sg_message_id": sg_message_id}
    if event == "delivered":
        entry["response"] = "250 OK"
    if event == "open":
        entry.update(useragent="Mozilla/5.0", ip="255.255.255.255")
    entry.update(extra)
    return entry


@pytest.fixture
def sent_email(webhook_app):
    """An outbox email the worker has handed to SendGrid (it stored the X-Message-Id)."""
    tenant = sign_up(webhook_app.test_client())
    message = queue_email(Session, tenant.company["id"], "jane@example.com", "Your appointment",
                          "See you Friday.", "appointment_reminder")
    message.status = "done"
    message.provider_message_id = X_MESSAGE_ID
    Session.commit()
    return message.id


def status_of(message_id):
    Session.expire_all()
    return Session.get(OutboxMessage, message_id).delivery_status


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_a_batch_updates_the_delivery_status_once_per_event(webhooks, sent_email):
    batch = [sendgrid_event("processed", "ZmFrZS1wcm9jZXNzZWQ"),
             sendgrid_event("delivered", "ZmFrZS1kZWxpdmVyZWQ"),
             sendgrid_event("open", "ZmFrZS1vcGVu")]
    response = webhooks.sendgrid(batch)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "processed",
                                   "events": {"processed": 3, "duplicate": 0, "ignored": 0}}
    assert status_of(sent_email) == "open"
    again = webhooks.sendgrid(batch)
    assert again.get_json()["events"] == {"processed": 0, "duplicate": 3, "ignored": 0}
    assert count_rows(WebhookEvent) == 3
    row = Session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == "ZmFrZS1vcGVu"))
    assert (row.provider, row.event_type) == ("sendgrid", "open")


def test_a_late_earlier_stage_event_does_not_move_the_status_back(webhooks, sent_email):
    webhooks.sendgrid([sendgrid_event("delivered", "ev-delivered")])
    webhooks.sendgrid([sendgrid_event("processed", "ev-processed")])
    assert status_of(sent_email) == "delivered"
    webhooks.sendgrid([sendgrid_event("bounce", "ev-bounce", reason="550 mailbox unavailable",
                                      type="bounce", status="5.1.1")])
    assert status_of(sent_email) == "bounce"


def test_a_partly_known_batch_applies_the_new_events_only(webhooks, sent_email):
    webhooks.sendgrid([sendgrid_event("processed", "ev-1")])
    response = webhooks.sendgrid([sendgrid_event("processed", "ev-1"), sendgrid_event("delivered", "ev-2"),
                                  sendgrid_event("delivered", "ev-3", sg_message_id="Unknown123.filter.0")])
    assert response.get_json()["events"] == {"processed": 1, "duplicate": 1, "ignored": 1}
    assert status_of(sent_email) == "delivered"
    assert count_rows(WebhookEvent) == 2


def test_another_key_stale_or_future_timestamps_and_missing_headers_are_401(webhooks, sent_email):
    batch = [sendgrid_event("delivered", "ev-x")]
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert webhooks.sendgrid(batch, private_key=other_key).status_code == 401
    assert webhooks.sendgrid(batch, at=int(WEBHOOK_NOW) - 601).status_code == 401
    assert webhooks.sendgrid(batch, at=int(WEBHOOK_NOW) + 601).status_code == 401
    assert webhooks.sendgrid(batch, at=int(WEBHOOK_NOW) - 599).status_code == 200
    body = webhooks.body_of(batch)
    headers = webhooks.sendgrid_headers(body)
    for missing in headers:
        partial = {k: v for k, v in headers.items() if k != missing}
        response = webhooks.post("/webhooks/sendgrid", body, partial)
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"
    tampered = body.replace(b"delivered", b"bounce")
    assert webhooks.post("/webhooks/sendgrid", tampered, headers).status_code == 401


def test_malformed_json_is_400_and_a_non_array_is_422(webhooks, sent_email):
    assert webhooks.sendgrid(b"[{").status_code == 400
    response = webhooks.sendgrid({"event": "delivered"})
    assert response.status_code == 422
    missing_id = webhooks.sendgrid([{"event": "delivered", "email": "jane@example.com"}])
    assert missing_id.status_code == 422 and "sg_event_id" in str(missing_id.get_json()["errors"])


@pytest.mark.parametrize("configured_key", [None, "bm90IGEga2V5"])
def test_without_a_usable_public_key_the_webhook_is_503(database_url, redis_url, redis_client, configured_key):
    app = build_app(database_url, redis_url, SENDGRID_WEBHOOK_PUBLIC_KEY=configured_key)
    with app.app_context():
        response = app.test_client().post("/webhooks/sendgrid", data=b"[]", headers={
            "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
            "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000"})
        assert response.status_code == 503
        assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.get_json()["detail"]
    Session.remove()
    app.extensions["gateway_engine"].dispose()
