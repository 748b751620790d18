"""How calls are selected: the filters shared by the list and the export, and keyset batches."""
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import load_only

from ..db import Session
from ..models import Call, Customer
from . import spreadsheet

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


def call_filters(company_id, filters):
    """WHERE clauses for the caller's company and the validated filters (see CallFilterArgs)."""
    clauses = [Call.company_id == company_id]
    if filters.get("started_from") is not None:
        clauses.append(Call.started_at >= filters["started_from"])
    if filters.get("started_before") is not None:
        clauses.append(Call.started_at < filters["started_before"])
    for name in ("direction", "status", "sentiment", "outcome", "customer_id"):
        if filters.get(name) is not None:
            clauses.append(getattr(Call, name) == filters[name])
    if filters.get("q"):
        clauses.append(func.lower(Call.summary).contains(filters["q"].lower(), autoescape=True))
    return clauses


def calls_list_query(company_id, filters):
    return select(Call).options(load_only(*LIST_COLUMNS, raiseload=True)).where(
        *call_filters(company_id, filters))


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
