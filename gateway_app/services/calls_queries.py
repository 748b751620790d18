"""How calls are selected: the filters shared by the list and the export, and keyset batches."""
from functools import lru_cache

import orjson
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.sql.expression import BindParameter

from ..db import (Session, aggregates_json_in_order, case_folded, iso_instant, json_array_column,
                  like_escaped, read_connection, row_dicts_of)
from ..models import Appointment, Call, Customer
from . import keyset, spreadsheet

# Rows fetched per query while exporting: bounds memory whatever the number of calls.
EXPORT_BATCH_SIZE = 1000

EXPORT_COLUMNS = (
    ("id", Call.id), ("started_at", Call.started_at), ("ended_at", Call.ended_at),
    ("direction", Call.direction), ("status", Call.status),
    ("from_number", Call.from_number), ("to_number", Call.to_number),
    ("duration_seconds", Call.duration_seconds), ("outcome", Call.outcome),
    ("sentiment", Call.sentiment), ("customer_id", Call.customer_id),
    ("customer_name", Customer.name), ("summary", Call.summary),
)
EXPORT_HEADER = tuple(name for name, _ in EXPORT_COLUMNS)

# The list never needs the transcript or the analysis, which can be large.
LIST_COLUMNS = (Call.id, Call.company_id, Call.customer_id, Call.retell_call_id, Call.direction,
                Call.status, Call.from_number, Call.to_number, Call.started_at, Call.ended_at,
                Call.duration_seconds, Call.outcome, Call.sentiment, Call.summary)


def call_filters(company_id, filters, calls=Call):
    """WHERE clauses for the caller's company and the validated filters (see CallFilterArgs),
    on the mapped class or, for a Core statement, on the table's columns (``calls``)."""
    clauses = [calls.company_id == company_id]
    if filters.get("started_from") is not None:
        clauses.append(calls.started_at >= filters["started_from"])
    if filters.get("started_before") is not None:
        clauses.append(calls.started_at < filters["started_before"])
    for name in ("direction", "status", "sentiment", "outcome", "customer_id"):
        if filters.get(name) is not None:
            clauses.append(getattr(calls, name) == filters[name])
    q = filters.get("q")
    if isinstance(q, BindParameter):   # a statement built once: bound to like_escaped(q.lower())
        clauses.append(case_folded(calls.summary).contains(q, escape="/"))
    elif q:
        clauses.append(case_folded(calls.summary).contains(q.lower(), autoescape=True))
    return clauses


# The read paths select columns with Core: a page is rows turned into the answer's dicts,
# with no ORM identity map, instance state or per-attribute loader to set up per row;
# instants come as the ISO text the answer shows (db.iso_instant).
CALLS = Call.__table__.c
_CUSTOMERS = Customer.__table__.c
_WITH_CUSTOMER = Call.__table__.outerjoin(Customer.__table__, _CUSTOMERS.id == CALLS.customer_id)
_INSTANTS = ("started_at", "ended_at")


def _as_sent(column):
    return iso_instant(column) if column.key in _INSTANTS else column


# a list row: with_customer makes {id, name} of customer_id and customer_name
CUSTOMER_NAME = _CUSTOMERS.name.label("customer_name")
LIST_ROW = tuple(_as_sent(CALLS[column.key]) for column in LIST_COLUMNS if column.key != "company_id") + (
    CUSTOMER_NAME,)
_DETAIL_ROW = tuple(_as_sent(column) for column in Call.__table__.columns
                    if column.key not in ("company_id",)) + (CUSTOMER_NAME,)
_APPOINTMENTS = Appointment.__table__.c
# the appointments a call booked in time order (ties: as the index holds them, by id)
_APPOINTMENTS_ORDER = (_APPOINTMENTS.starts_at, _APPOINTMENTS.id)


def list_rows_query(company_id, filters):
    """The list's page query: the list columns and the customer's name, one statement."""
    return select(*LIST_ROW).select_from(_WITH_CUSTOMER).where(
        *call_filters(company_id, filters, CALLS))


_FILTER_TYPES = {"started_from": CALLS.started_at.type, "started_before": CALLS.started_at.type}


@lru_cache(maxsize=256)
def _list_page_statement(filter_names, after):
    filters = {name: bindparam(name, type_=_FILTER_TYPES.get(name)) for name in filter_names}
    return keyset.newest_first(list_rows_query(bindparam("company_id"), filters),
                               CALLS.started_at, CALLS.id, after)


def list_page_rows(company_id, filters, after, limit):
    """A page of the list (``after``: (started_at, id) of the last call served, or None)."""
    given = {name: value for name, value in filters.items() if value is not None}
    if "q" in given:   # words in the summary: its LIKE pattern's text, escaped; "" filters nothing
        given["q"] = like_escaped(given["q"].lower())
        if not given["q"]:
            del given["q"]
    statement = _list_page_statement(tuple(sorted(given)), after is not None)
    return keyset.page_rows(statement, {**given, "company_id": company_id}, after, limit)


def with_customer(item):
    """A call row's dict as the answer's schema reads it: ``customer`` as {id, name} or None."""
    name = item.pop("customer_name")
    customer_id = item["customer_id"]
    item["customer"] = None if customer_id is None else {"id": customer_id, "name": name}
    return item


@lru_cache(maxsize=1)
def _detail_statements():
    company_id, call_id = bindparam("company_id"), bindparam("call_id")
    call = select(*_DETAIL_ROW).select_from(_WITH_CUSTOMER).where(
        CALLS.id == call_id, CALLS.company_id == company_id)
    appointments = (select(_APPOINTMENTS.id, _APPOINTMENTS.title, iso_instant(_APPOINTMENTS.starts_at),
                           _APPOINTMENTS.status)
                    .where(_APPOINTMENTS.company_id == company_id, _APPOINTMENTS.call_id == call_id)
                    .order_by(*_APPOINTMENTS_ORDER))
    return call, appointments


@lru_cache(maxsize=4)
def _detail_statement_with_appointments(dialect):
    """The call's statement with its appointments as one JSON array beside its columns."""
    call, appointments = _detail_statements()
    return call.add_columns(json_array_column(appointments, _APPOINTMENTS_ORDER, dialect, "appointments"))


def call_detail(company_id, call_id):
    """One call with its customer and the appointments it booked, or None: one statement
    where the database lists the appointments in order as JSON (db.aggregates_json_in_order),
    else two; built once."""
    params = {"company_id": company_id, "call_id": call_id}
    with read_connection() as connection:
        dialect = connection.dialect
        if aggregates_json_in_order(dialect):
            rows = row_dicts_of(connection, _detail_statement_with_appointments(dialect), params)
            if not rows:
                return None
            item = with_customer(rows[0])
            listed = item["appointments"]
            item["appointments"] = [] if listed is None else orjson.loads(listed)
            return item
        call, appointments = _detail_statements()
        rows = row_dicts_of(connection, call, params)
        if not rows:
            return None
        item = with_customer(rows[0])
        item["appointments"] = row_dicts_of(connection, appointments, params)
    return item


def export_rows(company_id, filters, batch_size=None):
    """Every matching call as a tuple in EXPORT_HEADER order, newest first.

    Each batch is its own query continuing after the last (started_at, id) served, so
    memory stays flat for any number of calls without a server-side cursor (PyMySQL's
    default cursor buffers a whole result set). The batches share the request's
    transaction, so on MariaDB (REPEATABLE READ) they all read one snapshot.
    """
    batch_size = batch_size or EXPORT_BATCH_SIZE
    base = (select(*(column for _, column in EXPORT_COLUMNS))
            .outerjoin(Customer, Customer.id == Call.customer_id)
            .where(*call_filters(company_id, filters))
            .order_by(Call.started_at.desc(), Call.id.desc()))
    after = None
    while True:
        query = base
        if after is not None:
            started_at, call_id = after
            # the plain range lets the (company_id, started_at, id) index seek to the
            # position instead of scanning past every row served before (O(n^2) overall)
            query = query.where(Call.started_at <= started_at,
                                or_(Call.started_at < started_at,
                                    and_(Call.started_at == started_at, Call.id < call_id)))
        rows = Session.execute(query.limit(batch_size)).all()
        yield from rows
        if len(rows) < batch_size:
            return
        after = (rows[-1].started_at, rows[-1].id)


def csv_chunks(rows, rows_per_chunk=200):
    """The calls CSV (header first) in chunks, every cell written by spreadsheet.cell."""
    return spreadsheet.csv_chunks(EXPORT_HEADER, rows, rows_per_chunk)
