"""Billing reads: Stripe through its breaker when linked, else the local mirror (webhooks)."""
import datetime as dt
from functools import lru_cache

from sqlalchemy import and_, bindparam, case, exists, func, select, tuple_

from ..db import Session, iso_instant, read_connection, row_dicts_of
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
    return linked_stripe_customer(company.stripe_customer_id, company.integrations)


def linked_stripe_customer(stripe_customer_id, integrations):
    """``stripe_customer`` of a company's ``stripe_customer_id`` and ``integrations``."""
    stripe = client_for(StripeClient)
    customer = stripe_customer_id or (integrations or {}).get("stripe_customer_id")
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


def invoice_id_of(invoice):
    """Stripe's ``invoice`` member: an id, or the invoice itself when expanded."""
    return invoice.get("id") if isinstance(invoice, dict) else invoice


def payment_from_stripe(item):
    return {"id": item["id"], "amount": item.get("amount", 0), "currency": item.get("currency"),
            "status": item.get("status"), "invoice": invoice_id_of(item.get("invoice")),
            "created_at": epoch_iso(item.get("created"))}


_COMPANIES, _INVOICES, _PAYMENTS = Company.__table__, Invoice.__table__, Payment.__table__
_OWN_COMPANY = _COMPANIES.c.id == bindparam("company_id")


def list_invoices(company_id, limit, cursor):
    """The company's invoices, newest first: from Stripe when it is linked, else from the mirror."""
    rows = mirror_rows(_invoices_statement(bool(cursor)), company_id, limit, cursor)
    customer = customer_beside(rows)
    if customer:
        return stripe_page(client_for(StripeClient).list_invoices(customer, limit, cursor),
                           invoice_from_stripe)
    return mirror_page(rows, limit, cursor)


def list_payments(company_id, limit, cursor):
    """The company's payments, newest first: from Stripe when it is linked, else from the mirror."""
    rows = mirror_rows(_payments_statement(bool(cursor)), company_id, limit, cursor)
    customer = customer_beside(rows)
    if customer:
        return stripe_page(client_for(StripeClient).list_payment_intents(customer, limit, cursor),
                           payment_from_stripe)
    return mirror_page(rows, limit, cursor)


def mirror_rows(statement, company_id, limit, cursor):
    """The rows of a list's statement (``_beside_company``), read in one statement."""
    params = {"company_id": company_id, "page_limit": limit + 1}
    if cursor:
        params["cursor"] = cursor
    with read_connection() as connection:
        rows = row_dicts_of(connection, statement, params)
    if not rows:
        raise LookupError(f"no company {company_id}")
    return rows


def customer_beside(rows):
    """The Stripe customer to ask, read beside a list's page (None: answer from the mirror)."""
    return linked_stripe_customer(rows[0]["stripe_customer_id"], rows[0]["integrations"])


# what every row of a list's statement carries beside its record
_BESIDE_RECORDS = ("stripe_customer_id", "integrations", "cursor_known")


def mirror_page(rows, limit, cursor):
    """The answer of the mirror's page read beside the company; the cursor is the Stripe id
    of the last record served, as with Stripe."""
    if cursor and not rows[0]["cursor_known"]:
        raise UnknownCursor(cursor)
    items = []
    for row in rows:
        if row["id"] is not None:   # else the company's row alone: no records
            for key in _BESIDE_RECORDS:
                row.pop(key, None)
            items.append(row)
    next_cursor = items[limit - 1]["id"] if len(items) > limit else None
    return {"data": items[:limit], "next_cursor": next_cursor, "source": "local", "note": LOCAL_NOTE}


@lru_cache(maxsize=2)
def _invoices_statement(after):
    """The invoice list's statement (``_beside_company``), built once per shape (with or
    without a cursor), every value bound."""
    invoices = _INVOICES.c
    page = _newest_records(_INVOICES, invoices.stripe_invoice_id, after, (
        invoices.number, invoices.status, invoices.currency, invoices.amount_due, invoices.amount_paid,
        invoices.period_start, invoices.period_end, invoices.hosted_invoice_url))
    shown = (page.c.stripe_invoice_id.label("id"), page.c.number, page.c.status, page.c.currency,
             page.c.amount_due, page.c.amount_paid, iso_instant(page.c.period_start),
             iso_instant(page.c.period_end), page.c.hosted_invoice_url, iso_instant(page.c.created_at))
    return _beside_company(shown, _company_with(page), page, invoices.stripe_invoice_id, after)


@lru_cache(maxsize=2)
def _payments_statement(after):
    """The payment list's statement (``_beside_company``), built once per shape, every value bound."""
    payments = _PAYMENTS.c
    page = _newest_records(_PAYMENTS, payments.stripe_payment_id, after, (
        payments.amount, payments.currency, payments.status, payments.invoice_id))
    # the mirror links a payment to its invoice's row; clients get Stripe's id, as from Stripe
    invoices = _INVOICES.alias("invoice")
    shown = (page.c.stripe_payment_id.label("id"), page.c.amount, page.c.currency, page.c.status,
             invoices.c.stripe_invoice_id.label("invoice"), iso_instant(page.c.created_at))
    joined = _company_with(page).outerjoin(invoices, invoices.c.id == page.c.invoice_id)
    return _beside_company(shown, joined, page, payments.stripe_payment_id, after)


def _newest_records(table, stripe_id, after, columns):
    """A subquery: the company's records of ``table`` (their id, company, Stripe id, time and
    ``columns``), newest first, strictly after the cursor's record when ``after``; LIMIT bound."""
    records = table.c
    page = select(records.id, records.company_id, stripe_id, records.created_at, *columns).where(
        records.company_id == bindparam("company_id"))
    if after:
        cursor_record = _cursor_record(stripe_id)
        position = select(cursor_record.c.created_at, cursor_record.c.id).where(_is_cursor(cursor_record, stripe_id))
        page = page.where(tuple_(records.created_at, records.id) < position.scalar_subquery())
    return (page.order_by(records.created_at.desc(), records.id.desc())
            .limit(bindparam("page_limit")).subquery("page"))


def _cursor_record(stripe_id):
    return stripe_id.table.alias("cursor_record")


def _is_cursor(record, stripe_id):
    """``record`` (an alias of the table) is the company's record whose Stripe id is the bound cursor."""
    return and_(record.c.company_id == bindparam("company_id"), record.c[stripe_id.key] == bindparam("cursor"))


def _company_with(page):
    return _COMPANIES.outerjoin(page, page.c.company_id == _COMPANIES.c.id)


def _beside_company(shown, joined, page, stripe_id, after):
    """Each record of ``page`` as ``shown`` (from ``joined``: the company, its page and what
    the records show), beside the company's Stripe customer: one row with the customer
    alone when the page is empty; with ``after``, whether the cursor names a record of the
    company (``cursor_known``)."""
    beside = [_COMPANIES.c.stripe_customer_id, _integrations_unless_linked()]
    if after:
        cursor_record = _cursor_record(stripe_id)
        beside.append(exists().where(_is_cursor(cursor_record, stripe_id)).label("cursor_known"))
    return (select(*shown, *beside).select_from(joined).where(_OWN_COMPANY)
            .order_by(page.c.created_at.desc(), page.c.id.desc()))


def _integrations_unless_linked():
    """The company's ``integrations``, read only when its ``stripe_customer_id`` names no
    customer (``linked_stripe_customer`` then looks there): beside every record of the page,
    the JSON would otherwise be decoded once per record."""
    customer = _COMPANIES.c.stripe_customer_id
    return case((func.coalesce(customer, "") == "", _COMPANIES.c.integrations)).label("integrations")


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
