"""Customer search, duplicate detection, profile figures and the timeline."""
from functools import lru_cache

from sqlalchemy import bindparam, case, func, or_, select

from ..clock import business_now
from ..db import Session, case_folded, iso_instant, like_escaped, one_of, read_connection, row_dicts_of
from ..models import CUSTOMERS_NEWEST_FIRST, Appointment, Call, Customer
from . import keyset
from .contacts import phone_or_none
from .feeds import FeedSource, page_feed

UPCOMING_STATUSES = ("pending", "confirmed")


def search_terms(q, region):
    """The values a search for ``q`` binds: ``text`` (lower-cased and escaped), which the
    name or e-mail contains; ``phone``, ``q`` read as an E.164 number; ``fragment``, the
    digits of a part of a number ("4567"); each None when ``q`` is not one."""
    text = q.strip().lower()
    fragment = text.lstrip("+").replace(" ", "").replace("-", "")
    return {"text": like_escaped(text), "phone": phone_or_none(q, region),
            "fragment": fragment if len(fragment) >= 4 and fragment.isdigit() else None}


def search_clauses(company_id, search, customers):
    """The WHERE clauses of the company's customers (``customers``: the table's columns)
    and, when ``search`` is (by phone, by fragment), of those whose name or e-mail contains
    the bound ``text``, or, if asked, whose phone is the bound ``phone`` or contains the
    bound ``fragment`` (the values search_terms gives)."""
    clauses = [customers.company_id == company_id]
    if search is None:
        return clauses
    by_phone, by_fragment = search
    text = bindparam("text")
    matches = [case_folded(customers.name).contains(text, escape="/"),
               case_folded(customers.email).contains(text, escape="/")]
    if by_phone:
        matches.append(customers.phone == bindparam("phone"))
    if by_fragment:
        # part of a number ("4567") matches the stored E.164 numbers containing it
        matches.append(customers.phone.contains(bindparam("fragment"), escape="/"))
    clauses.append(or_(*matches))
    return clauses


# Read paths select columns with Core (see calls_queries): no ORM instances per row.
CUSTOMERS = Customer.__table__.c
CUSTOMER_COLUMNS = ("id", "name", "phone", "email", "notes", "created_at", "updated_at")
_CUSTOMER_ROW = tuple(CUSTOMERS[name] for name in CUSTOMER_COLUMNS)
# what the list and the profile send: instants as the ISO text the answer shows
SENT_ROW = tuple(iso_instant(column) if column.key in ("created_at", "updated_at") else column
                 for column in _CUSTOMER_ROW)
_CALLS = Call.__table__.c
_APPOINTMENTS = Appointment.__table__.c


@lru_cache(maxsize=16)
def _page_statement(search, after):
    """A page of the company's customers, or of a search (``search``: see search_clauses),
    built once per shape with every value bound (a search text's pattern escaped in
    Python, as ``contains(..., autoescape=True)`` would escape it into the statement)."""
    statement = select(*SENT_ROW).where(*search_clauses(bindparam("company_id"), search, CUSTOMERS))
    for dialect in ("mysql", "mariadb"):
        # left to itself, MariaDB walks the index as a range and reads every customer's row
        # to test it; told to use it, it walks it by the company and tests in the index
        statement = statement.with_hint(Customer.__table__, f"FORCE INDEX ({CUSTOMERS_NEWEST_FIRST.name})", dialect)
    return keyset.newest_first(statement, CUSTOMERS.updated_at, CUSTOMERS.id, after)


def search_page_rows(company_id, q, region, after, limit):
    """A page of the search, most recently changed first (``after``: (updated_at, id) of
    the last customer served, or None); the whole list without ``q``."""
    params = {"company_id": company_id}
    search = None
    if q:
        terms = search_terms(q, region)
        search = (terms["phone"] is not None, terms["fragment"] is not None)
        params.update((name, value) for name, value in terms.items() if value is not None)
    return keyset.page_rows(_page_statement(search, after is not None), params, after, limit)


@lru_cache(maxsize=1)
def _profile_statement():
    company_id, customer_id, now = bindparam("company_id"), bindparam("customer_id"), bindparam("now")
    calls = (_CALLS.company_id == company_id, _CALLS.customer_id == customer_id)
    appointments = (_APPOINTMENTS.company_id == company_id, _APPOINTMENTS.customer_id == customer_id)
    upcoming = one_of(_APPOINTMENTS.status, UPCOMING_STATUSES) & (_APPOINTMENTS.starts_at >= now)
    figures = (
        select(func.count(_CALLS.id)).where(*calls).scalar_subquery().label("calls_count"),
        select(func.max(_CALLS.started_at)).where(*calls).scalar_subquery().label("last_call_at"),
        select(func.sum(_CALLS.duration_seconds)).where(*calls).scalar_subquery()
        .label("total_call_seconds"),
        select(func.count(_APPOINTMENTS.id)).where(*appointments).scalar_subquery()
        .label("appointments_count"),
        # CASE rather than FILTER (WHERE ...): MariaDB has no aggregate FILTER clause
        select(func.min(case((upcoming, _APPOINTMENTS.starts_at)))).where(*appointments)
        .scalar_subquery().label("next_appointment_at"),
    )
    return select(*SENT_ROW, *figures).where(CUSTOMERS.id == customer_id,
                                                   CUSTOMERS.company_id == company_id)


def profile(company_id, customer_id):
    """A customer's fields and profile figures in one statement (the figures as scalar
    subqueries over the company's indexes), or None when the company has no such customer."""
    with read_connection() as connection:
        rows = row_dicts_of(connection, _profile_statement(), {
            "company_id": company_id, "customer_id": customer_id, "now": business_now()})
    if not rows:
        return None
    found = rows[0]
    found["total_call_seconds"] = int(found["total_call_seconds"] or 0)
    return found


_OWNED_CUSTOMER = select(*_CUSTOMER_ROW, CUSTOMERS.company_id).where(
    CUSTOMERS.id == bindparam("customer_id"), CUSTOMERS.company_id == bindparam("company_id"))


def owned_customer(company_id, customer_id, connection):
    """The company's customer as a dict of its columns (as services.customers writes them),
    or None; read on ``connection`` (the write's)."""
    row = connection.execute(_OWNED_CUSTOMER, {"company_id": company_id,
                                               "customer_id": customer_id}).first()
    return None if row is None else dict(row._mapping)


def find_duplicate(company_id, phone=None, email=None, exclude_id=None, connection=None):
    """(field, existing customer id) of another customer with this phone or e-mail (the
    phone's first), or None; read on ``connection`` (the write's), else on the session's."""
    if phone is None and email is None:
        return None
    connection = connection or Session.connection()
    # one statement for both (a NULL parameter matches nothing): the company's unique keys
    # let each match one customer at most
    matches = connection.execute(_duplicate_statement(exclude_id is not None), {
        "company_id": company_id, "phone": phone, "email": email, "exclude_id": exclude_id}).all()
    by_phone = [existing for existing, existing_phone in matches
                if phone is not None and existing_phone == phone]
    if by_phone:
        return "phone", by_phone[0]
    return ("email", matches[0][0]) if matches else None


@lru_cache(maxsize=2)
def _duplicate_statement(excluding):
    query = select(CUSTOMERS.id, CUSTOMERS.phone).where(
        CUSTOMERS.company_id == bindparam("company_id"),
        or_(CUSTOMERS.phone == bindparam("phone"), CUSTOMERS.email == bindparam("email")))
    if excluding:
        query = query.where(CUSTOMERS.id != bindparam("exclude_id"))
    return query


# The timeline: the customer's calls (by start) and appointments (by start), each with
# what the answer shows of it.
_COMPANY, _CUSTOMER = bindparam("company_id"), bindparam("customer_id")
TIMELINE_SOURCES = (
    FeedSource("call", _CALLS.id, _CALLS.started_at,
               (_CALLS.company_id == _COMPANY, _CALLS.customer_id == _CUSTOMER),
               tuple((key, _CALLS[key]) for key in ("direction", "status", "outcome", "sentiment",
                                                    "duration_seconds", "summary"))),
    FeedSource("appointment", _APPOINTMENTS.id, _APPOINTMENTS.starts_at,
               (_APPOINTMENTS.company_id == _COMPANY, _APPOINTMENTS.customer_id == _CUSTOMER),
               (("title", _APPOINTMENTS.title), ("status", _APPOINTMENTS.status),
                ("starts_at", iso_instant(_APPOINTMENTS.starts_at)),
                ("ends_at", iso_instant(_APPOINTMENTS.ends_at)))),
)
_CUSTOMER_EXISTS = select(CUSTOMERS.id).where(CUSTOMERS.id == _CUSTOMER, CUSTOMERS.company_id == _COMPANY)


def timeline_page(company_id, customer_id, args, encode_cursor):
    """A page of the company's customer's timeline (see feeds.page_feed), or None when
    the company has no such customer; both read in one transaction."""
    params = {"company_id": company_id, "customer_id": customer_id}
    with read_connection() as connection:
        if connection.execute(_CUSTOMER_EXISTS, params).first() is None:
            return None
        return page_feed(TIMELINE_SOURCES, params, args, encode_cursor)
