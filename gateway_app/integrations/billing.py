"""Billing reads: Stripe through its breaker when linked, else the local mirror (webhooks)."""
import datetime as dt
from functools import lru_cache

from sqlalchemy import bindparam, func, select

from ..db import Session, read_connection
from ..models import Call, Company, Invoice, Payment, UsageRecord
from .http import client_for
from .stripe import StripeClient

class UnknownCursor(ValueError):
    """A cursor naming no record of the company: restarting from the newest would serve a
    client its first page again, forever."""


LOCAL_NOTE = ("Stripe is not configured for this gateway or company; these are the records "
              "received through Stripe webhooks.")


def stripe_customer(company):
    """The company's Stripe customer id when Stripe can be asked, else None (use the mirror)."""
    stripe = client_for(StripeClient)
    customer = company.stripe_customer_id or (company.integrations or {}).get("stripe_customer_id")
    return customer if stripe.configured and customer else None


def stripe_page(listing, mapper):
    data = [mapper(item) for item in listing.get("data", [])]
    next_cursor = listing["data"][-1]["id"] if listing.get("has_more") and listing.get("data") else None
    return {"data": data, "next_cursor": next_cursor, "source": "stripe"}


def invoice_from_stripe(item):
    return {"id": item["id"], "number": item.get("number"), "status": item.get("status"),
            "currency": item.get("currency"), "amount_due": item.get("amount_due", 0),
            "amount_paid": item.get("amount_paid", 0),
            "period_start": epoch_iso(item.get("period_start")),
            "period_end": epoch_iso(item.get("period_end")),
            "hosted_invoice_url": item.get("hosted_invoice_url"),
            "created_at": epoch_iso(item.get("created"))}


def invoice_from_mirror(row):
    return {"id": row.stripe_invoice_id, "number": row.number, "status": row.status,
            "currency": row.currency, "amount_due": row.amount_due, "amount_paid": row.amount_paid,
            "period_start": iso(row.period_start), "period_end": iso(row.period_end),
            "hosted_invoice_url": row.hosted_invoice_url, "created_at": iso(row.created_at)}


def invoice_id_of(invoice):
    """Stripe's ``invoice`` member: an id, or the invoice itself when expanded."""
    return invoice.get("id") if isinstance(invoice, dict) else invoice


def payment_from_stripe(item):
    return {"id": item["id"], "amount": item.get("amount", 0), "currency": item.get("currency"),
            "status": item.get("status"), "invoice": invoice_id_of(item.get("invoice")),
            "created_at": epoch_iso(item.get("created"))}


def payment_from_mirror(row):
    return {"id": row.stripe_payment_id, "amount": row.amount, "currency": row.currency,
            "status": row.status, "invoice": row.invoice_id, "created_at": iso(row.created_at)}


def list_invoices(company, limit, cursor):
    customer = stripe_customer(company)
    if customer:
        return stripe_page(client_for(StripeClient).list_invoices(customer, limit, cursor),
                           invoice_from_stripe)
    return mirror_page(Invoice, Invoice.stripe_invoice_id, company, limit, cursor, invoice_from_mirror)


def list_payments(company, limit, cursor):
    customer = stripe_customer(company)
    if customer:
        return stripe_page(client_for(StripeClient).list_payment_intents(customer, limit, cursor),
                           payment_from_stripe)
    page = mirror_page(Payment, Payment.stripe_payment_id, company, limit, cursor, payment_from_mirror)
    # the mirror links a payment to its invoice's row; clients get Stripe's id, as from Stripe
    linked = {item["invoice"] for item in page["data"] if item["invoice"] is not None}
    stripe_ids = dict(Session.execute(select(Invoice.id, Invoice.stripe_invoice_id)
                                      .where(Invoice.id.in_(linked))).all()) if linked else {}
    for item in page["data"]:
        item["invoice"] = stripe_ids.get(item["invoice"])
    return page


@lru_cache(maxsize=8)
def _mirror_statements(model, after):
    """The page (strictly after the bound position of the cursor's record if ``after``)
    and the cursor's record: Core, built once per shape."""
    table = model.__table__.c
    company_id = bindparam("company_id")
    page = select(*model.__table__.columns).where(table.company_id == company_id)
    if after:
        last_created = bindparam("last_created_at", type_=table.created_at.type)
        page = page.where((table.created_at < last_created)
                          | ((table.created_at == last_created) & (table.id < bindparam("last_id"))))
    page = page.order_by(table.created_at.desc(), table.id.desc()).limit(bindparam("page_limit"))
    return page, select(table.created_at, table.id)


def mirror_page(model, stripe_id_column, company, limit, cursor, mapper):
    """Newest first; the cursor is the Stripe id of the last row served, as with Stripe."""
    page, position = _mirror_statements(model, bool(cursor))
    params = {"company_id": company.id, "page_limit": limit + 1}
    with read_connection() as connection:
        if cursor:
            table = model.__table__.c
            last = connection.execute(position.where(table.company_id == company.id,
                                                     table[stripe_id_column.key] == cursor)).first()
            if last is None:
                raise UnknownCursor(cursor)
            params["last_created_at"], params["last_id"] = last
        rows = connection.execute(page, params).all()
    next_cursor = getattr(rows[limit - 1], stripe_id_column.key) if len(rows) > limit else None
    return {"data": [mapper(row) for row in rows[:limit]], "next_cursor": next_cursor,
            "source": "local", "note": LOCAL_NOTE}


def current_period(now=None):
    """The calendar month (UTC) the plan's minutes apply to."""
    now = now or dt.datetime.now(dt.timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def usage_between(company_id, start, end):
    calls, seconds = Session.execute(
        select(func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
        .where(Call.company_id == company_id, Call.started_at >= start, Call.started_at < end)).one()
    return int(calls), -(-int(seconds) // 60)   # minutes rounded up


@lru_cache(maxsize=1)
def _usage_statement():
    """The plan, the period's calls and seconds and the minutes reported to Stripe: one
    statement (scalar subqueries), built once."""
    company_id = bindparam("company_id")
    calls, records = Call.__table__.c, UsageRecord.__table__.c
    in_period = (calls.company_id == company_id,
                 calls.started_at >= bindparam("start", type_=calls.started_at.type),
                 calls.started_at < bindparam("end", type_=calls.started_at.type))
    reported = (records.company_id == company_id, records.reported_at.is_not(None),
                records.period_start >= bindparam("start", type_=records.period_start.type),
                records.period_end <= bindparam("end", type_=records.period_end.type))
    companies = Company.__table__.c
    return select(
        companies.plan_minutes,
        select(func.count(calls.id)).where(*in_period).scalar_subquery().label("calls"),
        select(func.coalesce(func.sum(calls.duration_seconds), 0)).where(*in_period)
        .scalar_subquery().label("seconds"),
        select(func.coalesce(func.sum(records.minutes), 0)).where(*reported)
        .scalar_subquery().label("reported"),
    ).where(companies.id == company_id)


def usage_of(company_id, now=None):
    """This month's calls and minutes of the company against its plan, in one statement."""
    start, end = current_period(now)
    with read_connection() as connection:
        row = connection.execute(_usage_statement(), {
            "company_id": company_id, "start": start, "end": end}).one()
    plan, calls, minutes = row.plan_minutes, int(row.calls), -(-int(row.seconds) // 60)
    return usage_answer(start, end, plan, calls, minutes, int(row.reported or 0))


def usage_answer(start, end, plan, calls, minutes, reported):
    return {"period_start": iso(start), "period_end": iso(end), "calls": calls,
            "minutes": minutes, "plan_minutes": plan,
            "remaining_minutes": max(0, plan - minutes),
            "percent_used": round(100.0 * minutes / plan, 1) if plan else None,
            "overage_minutes": max(0, minutes - plan),
            "reported_minutes": reported}


def iso(moment):
    return moment.isoformat() if moment else None


def epoch_iso(seconds):
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat() if seconds else None


_COMPANY_BILLING = select(*(Company.__table__.c[name] for name in (
    "id", "plan_minutes", "stripe_customer_id", "integrations"))).where(
    Company.__table__.c.id == bindparam("company_id"))


def company_of(company_id):
    """What billing reads of a company (a row: id, plan_minutes, stripe_customer_id,
    integrations), by a Core statement built once."""
    with read_connection() as connection:
        return connection.execute(_COMPANY_BILLING, {"company_id": company_id}).first()
