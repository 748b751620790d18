"""Usage reported to Stripe as meter events, once per settled hour, through the outbox.

Each hour of a company's calls becomes one UsageRecord whose ``identifier`` is derived
from the company and the window, so the record, the outbox message, Stripe's
``identifier`` and the ``Idempotency-Key`` are all the same stable value: re-running the
reporter or re-sending an event can never count minutes twice. An hour is reported only
once it has settled (calls are stored when their call_ended webhook arrives).
"""
import datetime as dt

from flask import current_app
from sqlalchemy import func, select

from .. import outbox
from ..db import Session, utcnow
from ..models import Company, UsageRecord
from .billing import current_period, stripe_customer, usage_between
from .http import client_for, outbox_delivery
from .stripe import StripeClient

METER_EVENT_KIND = "stripe.meter_event"
WINDOW = dt.timedelta(hours=1)
SETTLE = dt.timedelta(hours=1)


def usage_identifier(company_id, start):
    return f"gw-usage-{company_id}-{start:%Y%m%dT%H}"


def record_settled_usage(company, now=None):
    """Create the UsageRecords (and meter-event messages) of every settled, unreported hour."""
    now = now or utcnow()
    last_end = Session.scalar(select(func.max(UsageRecord.period_end))
                              .where(UsageRecord.company_id == company.id))
    # the first report starts when the company started (or this month, whichever is later)
    start = last_end or max(current_period(now)[0],
                            company.created_at.replace(minute=0, second=0, microsecond=0))
    settled = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
    created = []
    while start + WINDOW <= settled:
        end = start + WINDOW
        calls, minutes = usage_between(company.id, start, end)
        record = UsageRecord(company_id=company.id, period_start=start, period_end=end,
                             calls=calls, minutes=minutes,
                             identifier=usage_identifier(company.id, start))
        Session.add(record)
        Session.flush()
        if minutes:
            outbox.enqueue(Session, METER_EVENT_KIND, {"usage_record_id": record.id}, company.id)
        created.append(record)
        start = end
    return created


def report_due_usage(now=None):
    """Worker housekeeping: record settled usage of every company billed through Stripe."""
    if not client_for(StripeClient).configured:
        return 0
    companies = Session.scalars(select(Company).where(Company.stripe_customer_id.is_not(None))).all()
    count = sum(len(record_settled_usage(company, now)) for company in companies)
    Session.commit()
    return count


def deliver_meter_event(message):
    """Outbox handler: send one UsageRecord as a Stripe meter event."""
    record = Session.get(UsageRecord, message.payload["usage_record_id"])
    if record is None or record.reported_at is not None:
        return record.identifier if record else None
    customer = stripe_customer(Session.get(Company, record.company_id))
    if customer is None:
        raise outbox.PermanentFailure("the company has no Stripe customer to bill")
    event_name = current_app.extensions["gateway"].policy["integrations"]["stripe_meter_event"]
    with outbox_delivery():
        client_for(StripeClient).create_meter_event(
            event_name, customer, record.minutes, record.identifier,
            timestamp=(record.period_end - dt.timedelta(seconds=1)).timestamp())
    record.reported_at = utcnow()
    return record.identifier

