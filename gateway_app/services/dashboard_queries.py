"""Dashboard figures, each one aggregate query (COUNT/SUM over CASE) on indexed ranges.

Time boundaries come from periods.py as UTC instants, so the same SQL runs on SQLite
and MariaDB. SUM over no rows is NULL and MariaDB's SUM is a DECIMAL: ``count`` turns
both into an int.
"""
from sqlalchemy import and_, case, distinct, func, literal, select

from ..db import Session
from ..models import Appointment, AuditLog, Call, Customer
from .feeds import FeedSource
from .periods import Window, today_and_week

UPCOMING_STATUSES = ("pending", "confirmed")
UPCOMING_SHOWN = 5


def count_if(condition):
    return func.sum(case((condition, 1), else_=0))


def count(value):
    return int(value or 0)


def ratio(part, whole):
    return round(part / whole, 4) if whole else 0.0


def overview(company_id, zone, now):
    today_start, week_start = today_and_week(zone, now)
    today = Call.started_at >= today_start
    answered, missed = Call.status == "answered", Call.status == "missed"
    calls = Session.execute(select(
        count_if(today), count_if(and_(today, answered)), count_if(and_(today, missed)),
        func.count(Call.id), count_if(answered), count_if(missed),
    ).where(Call.company_id == company_id, Call.started_at >= week_start,
            Call.started_at <= now)).one()
    booked_today = Appointment.created_at >= today_start
    bookings = Session.execute(select(
        count_if(booked_today), func.count(Appointment.id), func.count(distinct(Appointment.call_id)),
    ).where(Appointment.company_id == company_id, Appointment.call_id.is_not(None),
            Appointment.created_at >= week_start)).one()
    upcoming_filter = (Appointment.company_id == company_id, Appointment.starts_at >= now,
                       Appointment.status.in_(UPCOMING_STATUSES))
    upcoming_count = Session.scalar(select(func.count(Appointment.id)).where(*upcoming_filter))
    upcoming = Session.scalars(select(Appointment).where(*upcoming_filter)
                               .order_by(Appointment.starts_at, Appointment.id)
                               .limit(UPCOMING_SHOWN)).all()
    answered_week = count(calls[4])
    return {
        "timezone": zone.key,
        "today_start": today_start, "week_start": week_start,
        "calls": {
            "today": {"total": count(calls[0]), "answered": count(calls[1]), "missed": count(calls[2])},
            "this_week": {"total": count(calls[3]), "answered": answered_week, "missed": count(calls[5])},
        },
        "appointments_booked_from_calls": {"today": count(bookings[0]), "this_week": count(bookings[1])},
        "upcoming_appointments": {"count": count(upcoming_count), "next": upcoming},
        # share of this week's answered calls that booked at least one appointment
        "conversion_rate": ratio(count(bookings[2]), answered_week),
    }


def metrics(company_id, zone, period, now):
    window = Window(zone, period, now)
    current = Call.started_at >= window.current_start
    previous = Call.started_at < window.previous_end
    answered, missed = Call.status == "answered", Call.status == "missed"
    calls = Session.execute(select(
        count_if(current), count_if(previous),
        count_if(and_(current, answered)), count_if(and_(previous, answered)),
        count_if(and_(current, missed)), count_if(and_(previous, missed)),
        func.sum(case((and_(current, answered), Call.duration_seconds), else_=0)),
        func.sum(case((and_(previous, answered), Call.duration_seconds), else_=0)),
    ).where(Call.company_id == company_id, Call.started_at >= window.previous_start,
            Call.started_at < now)).one()
    booked = Session.execute(select(
        count_if(Appointment.created_at >= window.current_start),
        count_if(Appointment.created_at < window.previous_end),
    ).where(Appointment.company_id == company_id, Appointment.call_id.is_not(None),
            Appointment.created_at >= window.previous_start, Appointment.created_at < now)).one()
    customers = Session.execute(select(
        count_if(Customer.created_at >= window.current_start),
        count_if(Customer.created_at < window.previous_end),
    ).where(Customer.company_id == company_id, Customer.created_at >= window.previous_start,
            Customer.created_at < now)).one()
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


def activity_sources(company_id):
    """Calls (when they started), bookings (when made) and customer changes (audit log)."""
    return [
        FeedSource("call", select(literal("call").label("kind"), Call.id.label("id"),
                                  Call.started_at.label("at")).where(Call.company_id == company_id),
                   Call),
        FeedSource("booking", select(literal("booking").label("kind"), Appointment.id.label("id"),
                                     Appointment.created_at.label("at"))
                   .where(Appointment.company_id == company_id), Appointment),
        FeedSource("customer", select(literal("customer").label("kind"), AuditLog.id.label("id"),
                                      AuditLog.created_at.label("at"))
                   .where(AuditLog.company_id == company_id, AuditLog.target_type == "customer"),
                   AuditLog),
    ]


def customer_names(company_id, audit_rows):
    ids = {int(row.target_id) for row in audit_rows if row.target_id and row.target_id.isdigit()}
    if not ids:
        return {}
    return dict(Session.execute(select(Customer.id, Customer.name).where(
        Customer.company_id == company_id, Customer.id.in_(ids))).all())
