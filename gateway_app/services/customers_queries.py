"""Customer search, duplicate detection, profile figures and the timeline."""
from sqlalchemy import case, func, literal, or_, select

from ..db import Session, utcnow
from ..models import Appointment, Call, Customer
from .contacts import phone_or_none
from .feeds import FeedSource

UPCOMING_STATUSES = ("pending", "confirmed")


def search_query(company_id, q, region):
    """Customers whose name or e-mail contains ``q``, or whose phone is ``q`` in E.164."""
    query = select(Customer).where(Customer.company_id == company_id)
    if not q:
        return query
    text = q.strip().lower()
    matches = [func.lower(Customer.name).contains(text, autoescape=True),
               func.lower(Customer.email).contains(text, autoescape=True)]
    phone = phone_or_none(q, region)
    if phone is not None:
        matches.append(Customer.phone == phone)
    fragment = text.lstrip("+").replace(" ", "").replace("-", "")
    if len(fragment) >= 4 and fragment.isdigit():
        # part of a number ("4567") matches the stored E.164 numbers containing it
        matches.append(Customer.phone.contains(fragment, autoescape=True))
    return query.where(or_(*matches))


def find_duplicate(company_id, phone=None, email=None, exclude_id=None):
    """(field, existing customer id) of another customer with this phone or e-mail, or None."""
    for field, column, value in (("phone", Customer.phone, phone), ("email", Customer.email, email)):
        if value is None:
            continue
        query = select(Customer.id).where(Customer.company_id == company_id, column == value)
        if exclude_id is not None:
            query = query.where(Customer.id != exclude_id)
        existing = Session.scalar(query.order_by(Customer.id).limit(1))
        if existing is not None:
            return field, existing
    return None


def profile_figures(customer):
    """Counts and dates shown on a profile: two aggregate queries."""
    calls = Session.execute(
        select(func.count(Call.id), func.max(Call.started_at), func.sum(Call.duration_seconds))
        .where(Call.company_id == customer.company_id, Call.customer_id == customer.id)).one()
    now = utcnow()
    upcoming = Appointment.status.in_(UPCOMING_STATUSES) & (Appointment.starts_at >= now)
    # CASE rather than FILTER (WHERE ...): MariaDB has no aggregate FILTER clause
    appointments = Session.execute(
        select(func.count(Appointment.id), func.min(case((upcoming, Appointment.starts_at))))
        .where(Appointment.company_id == customer.company_id,
               Appointment.customer_id == customer.id)).one()
    return {
        "calls_count": calls[0],
        "last_call_at": calls[1],
        "total_call_seconds": int(calls[2] or 0),
        "appointments_count": appointments[0],
        "next_appointment_at": appointments[1],
    }


def timeline_sources(company_id, customer_id):
    """The customer's calls (by start) and appointments (by start), as one feed."""
    return [
        FeedSource("call", select(literal("call").label("kind"), Call.id.label("id"),
                                  Call.started_at.label("at"))
                   .where(Call.company_id == company_id, Call.customer_id == customer_id),
                   Call),
        FeedSource("appointment", select(literal("appointment").label("kind"),
                                         Appointment.id.label("id"),
                                         Appointment.starts_at.label("at"))
                   .where(Appointment.company_id == company_id,
                          Appointment.customer_id == customer_id),
                   Appointment),
    ]
