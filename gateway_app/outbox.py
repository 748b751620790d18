"""The durable outbox: writes that must reach a provider, delivered by `gateway worker`.

A message is inserted in the same transaction as the business change, so it exists
exactly when the change does. The worker claims due messages with a lease (so two
workers never send one message at once), calls the handler registered for its kind,
and marks it done, or schedules a retry with exponential backoff and jitter, or marks
it dead after MAX_ATTEMPTS.
"""
import datetime as dt
import logging
import random
import time

from prometheus_client import Counter
from sqlalchemy import or_, select, update

from .db import Session, utcnow
from .models import OutboxMessage

log = logging.getLogger("gateway.outbox")
MAX_ATTEMPTS = 8
BASE_DELAY = 2.0        # seconds; doubled per attempt
MAX_DELAY = 600.0
LEASE = dt.timedelta(seconds=60)
BATCH = 50

_handlers = {}
deliveries = Counter("gateway_outbox_deliveries_total", "Outbox delivery attempts",
                     ["kind", "result"])


class RetryLater(Exception):
    """Deliver again later; ``delay`` (seconds) overrides the backoff, e.g. a breaker's reset."""

    def __init__(self, message, delay=None):
        super().__init__(message)
        self.delay = delay


class PermanentFailure(Exception):
    """The provider refused the message for good (a 4xx): retrying cannot help."""


def register_handler(kind, handler):
    """``handler(message)`` delivers one message; returns a provider message id or None."""
    _handlers[kind] = handler


def enqueue(session, kind, payload, company_id=None):
    message = OutboxMessage(kind=kind, payload=payload, company_id=company_id,
                            status="pending", next_attempt_at=utcnow())
    session.add(message)
    return message


def backoff_delay(attempts, rng=random.random):
    """Full-jitter exponential backoff (AWS architecture blog)."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (2 ** max(0, attempts - 1)))
    return ceiling / 2 + rng() * ceiling / 2


def claim_due(now=None, limit=BATCH):
    """Lease up to ``limit`` due messages to this worker and return their ids."""
    now = now or utcnow()
    candidates = Session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
               or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now))
        .order_by(OutboxMessage.next_attempt_at).limit(limit)).all()
    claimed = [message_id for message_id in candidates if _lease(message_id, now)]
    Session.commit()
    return claimed


def _lease(message_id, now):
    # compare-and-set: only one worker wins each lease
    result = Session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending",
               or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now))
        .values(locked_until=now + LEASE))
    return result.rowcount == 1


def claim(message_id, now=None):
    """Lease one message (e.g. to deliver it inside the request that queued it)."""
    won = _lease(message_id, now or utcnow())
    Session.commit()
    return won


def deliver_one(message_id, now=None, handler=None):
    """Deliver one leased message with its kind's handler (or ``handler``, same signature)."""
    message = Session.get(OutboxMessage, message_id)
    Session.refresh(message)
    handler = handler or _handlers.get(message.kind)
    message.attempts += 1
    try:
        if handler is None:
            raise PermanentFailure(f"no handler for outbox kind {message.kind!r}")
        provider_id = handler(message)
    except PermanentFailure as exc:
        mark_dead(message, str(exc))
    except Exception as exc:  # any provider fault: try again later, bounded
        schedule_retry(message, exc, getattr(exc, "delay", None), now)
    else:
        message.status = "done"
        message.completed_at = utcnow()
        message.provider_message_id = provider_id or message.provider_message_id
        message.locked_until = None
        message.last_error = None
        deliveries.labels(message.kind, "done").inc()
    Session.commit()
    return message.status


def schedule_retry(message, exc, delay, now):
    if message.attempts >= MAX_ATTEMPTS:
        mark_dead(message, f"gave up after {message.attempts} attempts: {exc}")
        return
    wait = delay if delay is not None else backoff_delay(message.attempts)
    message.next_attempt_at = (now or utcnow()) + dt.timedelta(seconds=wait)
    message.locked_until = None
    message.last_error = str(exc)[:2000]
    deliveries.labels(message.kind, "retry").inc()
    log.warning("outbox delivery failed, retrying", extra={
        "outbox_id": message.id, "kind": message.kind, "attempts": message.attempts,
        "retry_in": round(wait, 1), "reason": message.last_error[:500]})


def mark_dead(message, reason):
    message.status = "dead"
    message.locked_until = None
    message.last_error = reason[:2000]
    message.completed_at = utcnow()
    deliveries.labels(message.kind, "dead").inc()
    log.error("outbox message dead", extra={"outbox_id": message.id, "kind": message.kind,
                                            "attempts": message.attempts, "reason": message.last_error[:500]})


def deliver_due(now=None):
    """One pass: deliver every due message. Returns {status: count}."""
    results = {}
    for message_id in claim_due(now):
        status = deliver_one(message_id, now)
        results[status] = results.get(status, 0) + 1
    return results


def run_worker(once=False, poll_interval=1.0, housekeeping=()):
    """Deliver until stopped. ``housekeeping``: (interval seconds, callable) run between passes."""
    log.info("outbox worker started")
    last_run = {}
    while True:
        for interval, job in housekeeping:
            if once or time.monotonic() - last_run.get(job, -interval) >= interval:
                last_run[job] = time.monotonic()
                run_guarded(job)
        results = run_guarded(deliver_due) or {}
        if once:
            return results
        if not results:
            time.sleep(poll_interval)


def run_guarded(job):
    try:
        return job()
    except Exception:  # database or provider blip: keep the worker alive, try again next poll
        log.exception("worker job failed", extra={"job": getattr(job, "__name__", str(job))})
        Session.rollback()
        return None
