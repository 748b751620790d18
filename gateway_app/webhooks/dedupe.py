"""Exactly-once processing of provider events.

The WebhookEvent row (unique on provider + event id) is inserted in the same transaction
as the event's effect, and first, so a concurrent identical delivery blocks on the unique
index until the first commits and then fails with IntegrityError: one effect, one row.
An event that concerns nothing we know (``Ignored``) is rolled back unrecorded, so a
later delivery, after the company has linked its provider account, still applies.
"""
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from ..db import Session
from ..models import WebhookEvent
from .common import DUPLICATE, IGNORED, PROCESSED, STALE

log = logging.getLogger("gateway.webhooks")

# a conflict on the effect's own unique keys (two different events of one call both
# creating it) or a lock timeout / deadlock is resolved by running the event again
ATTEMPTS = 3


class Ignored(Exception):
    """The event is valid but concerns no company or row we know; answered 200, not recorded."""

    status = IGNORED


class Stale(Ignored):
    """The event was created before one already applied to the same row; answered 200, not
    recorded (a redelivery is just as stale)."""

    status = STALE


class RetryDelivery(Exception):
    """Concurrent updates kept conflicting; the provider should deliver again later."""


def already_recorded(provider, event_id):
    return Session.scalar(select(WebhookEvent.id).where(
        WebhookEvent.provider == provider, WebhookEvent.event_id == event_id)) is not None


def process_once(provider, event_id, event_type, effect):
    """Apply ``effect(session, record)`` once per (provider, event_id).

    ``effect`` sets ``record.company_id`` and adds its rows to the session; it may raise
    ``Ignored`` (or its ``Stale``). Returns PROCESSED, DUPLICATE, IGNORED or STALE.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            record = WebhookEvent(provider=provider, event_id=event_id, event_type=event_type)
            Session.add(record)
            Session.flush()
            effect(Session, record)
            Session.commit()
            return PROCESSED
        except Ignored as exc:
            Session.rollback()
            log.warning("%s webhook %s (%s) ignored: %s", provider, event_id, event_type, exc,
                        extra={"provider": provider, "event_id": event_id})
            return exc.status
        except (IntegrityError, OperationalError) as exc:
            Session.rollback()
            if isinstance(exc, IntegrityError) and already_recorded(provider, event_id):
                return DUPLICATE
            log.warning("%s webhook %s conflicted (attempt %d): %s", provider, event_id,
                        attempt, exc.orig if hasattr(exc, "orig") else exc)
        except Exception:
            Session.rollback()
            raise
    raise RetryDelivery(f"{provider} event {event_id} kept conflicting with concurrent updates")
