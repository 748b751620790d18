"""The calendar's page: appointments starting in a UTC range, in time order, by keyset.

The statement is built once per shape (status filter, customer filter, cursor) with every
value bound at execution, as the lists' are (keyset.py).
"""
import datetime as dt
from functools import lru_cache

from sqlalchemy import and_, bindparam, or_, select

from ..clock import business_now
from ..db import iso_instant, read_connection, row_dicts_of
from ..models import Appointment
from .periods import stored_zone_name
from .timeranges import LocalRange, zone_or_utc

DEFAULT_CALENDAR_DAYS = 7

APPOINTMENTS = Appointment.__table__.c
# a calendar row: what the appointments blueprint sends of it, instants as their ISO text
# in UTC (db.iso_instant); the blueprint renders starts_at and ends_at in the calendar's
# timezone
CALENDAR_COLUMNS = tuple(APPOINTMENTS[name] for name in (
    "id", "customer_id", "call_id", "title", "notes", "status", "calcom_booking_uid")) + tuple(
    iso_instant(APPOINTMENTS[name]) for name in ("starts_at", "ends_at", "created_at", "updated_at"))


@lru_cache(maxsize=16)
def _page_statement(by_status, by_customer, after):
    starts_at, row_id = APPOINTMENTS.starts_at, APPOINTMENTS.id
    clauses = [APPOINTMENTS.company_id == bindparam("company_id"),
               starts_at >= bindparam("start", type_=starts_at.type),
               starts_at < bindparam("end", type_=starts_at.type)]
    if by_status:
        clauses.append(APPOINTMENTS.status == bindparam("status"))
    if by_customer:
        clauses.append(APPOINTMENTS.customer_id == bindparam("customer_id"))
    if after:
        after_start = bindparam("after_start", type_=starts_at.type)
        clauses.append(or_(starts_at > after_start,
                           and_(starts_at == after_start, row_id > bindparam("after_id"))))
    return (select(*CALENDAR_COLUMNS).where(*clauses).order_by(starts_at, row_id)
            .limit(bindparam("page_limit")))


def calendar_page(company_id, zone, first, last, status, customer_id, after, limit, company_zone_name=None):
    """(zone, first, last, rows): the calendar of local dates first..last in ``zone``, or
    when None in the company's timezone (``company_zone_name``, else read in the same
    transaction as the page); a week from today, or ending on ``last``, when ``first`` is
    not given."""
    with read_connection():
        zone = zone or zone_or_utc(company_zone_name or stored_zone_name(company_id))
        if first is None:
            first = (last - dt.timedelta(days=DEFAULT_CALENDAR_DAYS - 1)) if last \
                else business_now().astimezone(zone).date()
        if last is None:
            last = first + dt.timedelta(days=DEFAULT_CALENDAR_DAYS - 1)
        window = LocalRange(first, last, zone)
        rows = page_rows(company_id, window.start_utc, window.end_utc, status, customer_id, after, limit)
    return zone, first, last, rows


def page_rows(company_id, start, end, status, customer_id, after, limit):
    """Up to ``limit + 1`` appointments starting in [start, end), earliest first, strictly
    after ``after`` ((starts_at, id) of the last one served) if given, as dicts."""
    params = {"company_id": company_id, "start": start, "end": end, "status": status,
              "customer_id": customer_id, "page_limit": limit + 1}
    if after is not None:
        params["after_start"], params["after_id"] = after
    statement = _page_statement(bool(status), bool(customer_id), after is not None)
    with read_connection() as connection:
        return row_dicts_of(connection, statement, params)
