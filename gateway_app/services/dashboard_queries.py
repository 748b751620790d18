"""Dashboard figures, each one aggregate query (COUNT/SUM over CASE) on indexed ranges.

Time boundaries come from periods.py as UTC instants, so the same SQL runs on SQLite
and MariaDB. SUM over no rows is NULL and MariaDB's SUM is a DECIMAL: ``count`` turns
both into an int.
"""
from functools import lru_cache

from sqlalchemy import and_, bindparam, case, distinct, func, literal_column, select

from ..db import count_rows_of, iso_instant, one_of, read_connection, row_dicts_of
from ..models import Appointment, AuditLog, Call, Customer
from .feeds import FeedSource, page_feed
from .periods import Window, company_zone, today_and_week

UPCOMING_STATUSES = ("pending", "confirmed")
UPCOMING_SHOWN = 5


def count_if(condition):
    return func.sum(case((condition, 1), else_=0))


def count(value):
    return int(value or 0)


def ratio(part, whole):
    return round(part / whole, 4) if whole else 0.0


# Each answer is one statement of one-row derived tables (the aggregates of each table,
# joined on true), built once with its company and boundaries bound at execution:
# building the CASE expressions and their cache key per request cost more than the query.
_CALLS = Call.__table__.c
_APPOINTMENTS = Appointment.__table__.c
_CUSTOMERS = Customer.__table__.c
_UPCOMING_COLUMNS = (_APPOINTMENTS.id, _APPOINTMENTS.title, iso_instant(_APPOINTMENTS.starts_at),
                     iso_instant(_APPOINTMENTS.ends_at), _APPOINTMENTS.status, _APPOINTMENTS.customer_id)


def _instant(name):
    return bindparam(name, type_=_CALLS.started_at.type)


def _one_row(*aggregates):
    """One statement answering the row of each of ``aggregates`` (one-row selects), joined
    on a constant column: SQLAlchemy's linter counts a join on true as a cartesian product."""
    derived = [query.add_columns(literal_column("1").label("one")).subquery(name) for name, query in aggregates]
    joined = derived[0]
    for table in derived[1:]:
        joined = joined.join(table, table.c.one == derived[0].c.one)
    return select(*(column for table in derived for column in table.c if column.key != "one")
                  ).select_from(joined)


@lru_cache(maxsize=1)
def _overview_statements():
    company = bindparam("company_id")
    today_start, week_start, now = _instant("today_start"), _instant("week_start"), _instant("now")
    today = _CALLS.started_at >= today_start
    answered, missed = _CALLS.status == "answered", _CALLS.status == "missed"
    calls = select(
        count_if(today).label("calls_today"), count_if(and_(today, answered)).label("answered_today"),
        count_if(and_(today, missed)).label("missed_today"), func.count(_CALLS.id).label("calls_week"),
        count_if(answered).label("answered_week"), count_if(missed).label("missed_week"),
    ).where(_CALLS.company_id == company, _CALLS.started_at >= week_start,
            _CALLS.started_at <= now)
    booked_today = _APPOINTMENTS.created_at >= today_start
    bookings = select(
        count_if(booked_today).label("booked_today"), func.count(_APPOINTMENTS.id).label("booked_week"),
        func.count(distinct(_APPOINTMENTS.call_id)).label("booking_calls"),
    ).where(_APPOINTMENTS.company_id == company, _APPOINTMENTS.call_id.is_not(None),
            _APPOINTMENTS.created_at >= week_start)
    upcoming_filter = (_APPOINTMENTS.company_id == company, _APPOINTMENTS.starts_at >= now,
                       one_of(_APPOINTMENTS.status, UPCOMING_STATUSES))
    upcoming_count = select(func.count(_APPOINTMENTS.id).label("upcoming")).where(
        *upcoming_filter)
    upcoming = (select(*_UPCOMING_COLUMNS).where(*upcoming_filter)
                .order_by(_APPOINTMENTS.starts_at, _APPOINTMENTS.id).limit(UPCOMING_SHOWN))
    return _one_row(("calls_week", calls), ("bookings_week", bookings), ("upcoming", upcoming_count)), upcoming


def overview(company_id, now, zone_name=None):
    """The overview in the company's timezone (``zone_name``, else read in the same
    transaction): the figures and the upcoming list read in one transaction, so they
    agree."""
    figures_statement, upcoming_statement = _overview_statements()
    with read_connection() as connection:
        zone = company_zone(company_id, zone_name)
        today_start, week_start = today_and_week(zone, now)
        params = {"company_id": company_id, "today_start": today_start, "week_start": week_start,
                  "now": now}
        figures = count_rows_of(connection, figures_statement, params)[0]
        upcoming = row_dicts_of(connection, upcoming_statement, params)
    answered_week = count(figures["answered_week"])
    return {
        "timezone": zone.key,
        "today_start": today_start, "week_start": week_start,
        "calls": {
            "today": {"total": count(figures["calls_today"]), "answered": count(figures["answered_today"]),
                      "missed": count(figures["missed_today"])},
            "this_week": {"total": count(figures["calls_week"]), "answered": answered_week,
                          "missed": count(figures["missed_week"])},
        },
        "appointments_booked_from_calls": {"today": count(figures["booked_today"]),
                                           "this_week": count(figures["booked_week"])},
        "upcoming_appointments": {"count": count(figures["upcoming"]), "next": upcoming},
        # share of this week's answered calls that booked at least one appointment
        "conversion_rate": ratio(count(figures["booking_calls"]), answered_week),
    }


@lru_cache(maxsize=1)
def _metrics_statement():
    company = bindparam("company_id")
    current_start, previous_start = _instant("current_start"), _instant("previous_start")
    previous_end, now = _instant("previous_end"), _instant("now")
    current = _CALLS.started_at >= current_start
    previous = _CALLS.started_at < previous_end
    answered, missed = _CALLS.status == "answered", _CALLS.status == "missed"
    calls = select(
        count_if(current).label("c0"), count_if(previous).label("c1"),
        count_if(and_(current, answered)).label("c2"), count_if(and_(previous, answered)).label("c3"),
        count_if(and_(current, missed)).label("c4"), count_if(and_(previous, missed)).label("c5"),
        func.sum(case((and_(current, answered), _CALLS.duration_seconds), else_=0)).label("c6"),
        func.sum(case((and_(previous, answered), _CALLS.duration_seconds), else_=0)).label("c7"),
    ).where(_CALLS.company_id == company, _CALLS.started_at >= previous_start,
            _CALLS.started_at < now)
    booked = select(
        count_if(_APPOINTMENTS.created_at >= current_start).label("b0"),
        count_if(_APPOINTMENTS.created_at < previous_end).label("b1"),
    ).where(_APPOINTMENTS.company_id == company, _APPOINTMENTS.call_id.is_not(None),
            _APPOINTMENTS.created_at >= previous_start, _APPOINTMENTS.created_at < now)
    customers = select(
        count_if(_CUSTOMERS.created_at >= current_start).label("n0"),
        count_if(_CUSTOMERS.created_at < previous_end).label("n1"),
    ).where(_CUSTOMERS.company_id == company, _CUSTOMERS.created_at >= previous_start,
            _CUSTOMERS.created_at < now)
    return _one_row(("calls", calls), ("booked", booked), ("customers", customers))


def metrics(company_id, period, now, zone_name=None):
    """The KPI tiles in the company's timezone (``zone_name``, else read in the same
    transaction as the figures)."""
    with read_connection() as connection:
        zone = company_zone(company_id, zone_name)
        window = Window(zone, period, now)
        row = count_rows_of(connection, _metrics_statement(), {
            "company_id": company_id, "current_start": window.current_start,
            "previous_start": window.previous_start, "previous_end": window.previous_end,
            "now": now})[0]
    calls = [row[f"c{index}"] for index in range(8)]
    booked = (row["b0"], row["b1"])
    customers = (row["n0"], row["n1"])
    total, total_before = count(calls[0]), count(calls[1])
    answered_now, answered_before = count(calls[2]), count(calls[3])
    booked_now, booked_before = count(booked[0]), count(booked[1])
    tiles = [
        tile("calls", "Calls", total, total_before),
        tile("answered_calls", "Answered calls", answered_now, answered_before),
        tile("missed_calls", "Missed calls", count(calls[4]), count(calls[5])),
        tile("answer_rate", "Answer rate", ratio(answered_now, total), ratio(answered_before, total_before)),
        tile("avg_call_seconds", "Average answered call (s)",
             round(count(calls[6]) / answered_now, 1) if answered_now else 0.0,
             round(count(calls[7]) / answered_before, 1) if answered_before else 0.0),
        tile("bookings_from_calls", "Appointments booked by calls", booked_now, booked_before),
        tile("conversion_rate", "Bookings per answered call",
             ratio(booked_now, answered_now), ratio(booked_before, answered_before)),
        tile("new_customers", "New customers", count(customers[0]), count(customers[1])),
    ]
    return {"period": period, "timezone": zone.key,
            "current": {"from": window.current_start, "to": window.now},
            "previous": {"from": window.previous_start, "to": window.previous_end},
            "tiles": tiles}


def tile(key, label, value, previous):
    change = round(value - previous, 4)
    return {"key": key, "label": label, "value": value, "previous": previous, "change": change,
            "change_percent": round(100.0 * change / previous, 1) if previous else None}


# The activity feed: calls (when they started), bookings (when made) and customer changes
# (the audit log), each with what the answer shows of it.
_AUDIT = AuditLog.__table__.c
_COMPANY = bindparam("company_id")
ACTIVITY_SOURCES = (
    FeedSource("call", _CALLS.id, _CALLS.started_at, (_CALLS.company_id == _COMPANY,),
               tuple((key, _CALLS[key]) for key in ("direction", "status", "outcome", "customer_id",
                                                    "summary"))),
    FeedSource("booking", _APPOINTMENTS.id, _APPOINTMENTS.created_at,
               (_APPOINTMENTS.company_id == _COMPANY,),
               (("title", _APPOINTMENTS.title), ("status", _APPOINTMENTS.status),
                ("starts_at", iso_instant(_APPOINTMENTS.starts_at)),
                ("customer_id", _APPOINTMENTS.customer_id), ("call_id", _APPOINTMENTS.call_id))),
    FeedSource("customer", _AUDIT.id, _AUDIT.created_at,
               (_AUDIT.company_id == _COMPANY, _AUDIT.target_type == "customer"),
               tuple((key, _AUDIT[key]) for key in ("action", "target_id", "details", "user_id"))),
)


def activity_page(company_id, args, encode_cursor):
    """A page of the activity feed (feeds.page_feed); a customer change's entry also has
    the changed customer's ``customer_id`` and ``customer_name`` (None when the change
    names no customer of the company): one more statement when the page has any, in the
    page's transaction."""
    with read_connection():
        page = page_feed(ACTIVITY_SOURCES, {"company_id": company_id}, args, encode_cursor)
        changes = [entry for entry in page["data"] if entry["kind"] == "customer"]
        for entry in changes:
            entry["customer_id"] = audited_customer_id(entry["target_id"])
        names = customer_names(company_id, [entry["customer_id"] for entry in changes])
    for entry in changes:
        entry["customer_name"] = names.get(entry["customer_id"])
    return page


def audited_customer_id(target_id):
    return int(target_id) if target_id and target_id.isdigit() else None


@lru_cache(maxsize=1)
def _customer_names_statement():
    return select(_CUSTOMERS.id, _CUSTOMERS.name).where(
        _CUSTOMERS.company_id == bindparam("company_id"),
        _CUSTOMERS.id.in_(bindparam("ids", expanding=True)))


def customer_names(company_id, customer_ids):
    """{id: name} of the company's customers among ``customer_ids`` (ints or None)."""
    ids = sorted({customer_id for customer_id in customer_ids if customer_id is not None})
    if not ids:
        return {}
    with read_connection() as connection:
        return dict(connection.execute(_customer_names_statement(),
                                       {"company_id": company_id, "ids": ids}).all())
