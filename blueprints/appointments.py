"""Appointments service: the calendar, booking (handed to Cal.com), status changes."""
import contextlib
import datetime as dt

from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from blueprints.common import (PageArgs, current_company_id, current_principal, encode_cursor,
                               get_owned_or_404, parse_sort_value)
from gateway_app import bookings, events
from gateway_app.audit import audit
from gateway_app.clock import business_now
from gateway_app.db import Session, utcnow
from gateway_app.errors import GatewayProblem
from gateway_app.models import APPOINTMENT_STATUSES, Appointment, Call, Company, Customer
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import appointments_rules as rules
from gateway_app.services.timeranges import (LocalDateRangeArgs, LocalRange, TimezoneField, as_utc,
                                             zone_or_utc)

blp = Blueprint("appointments", __name__, url_prefix="/api/v1/appointments", description="Appointments service")

DEFAULT_CALENDAR_DAYS = 7
MAX_DURATION_MINUTES = 24 * 60
PAST_GRACE = dt.timedelta(minutes=5)  # a slot agreed on a call may be posted a moment late
UPDATED = "appointments.updated"


class CalendarArgs(PageArgs, LocalDateRangeArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(APPOINTMENT_STATUSES))
    customer_id = fields.Integer(load_default=None, validate=validate.Range(min=1))


class TimezoneArgs(Schema):
    tz = TimezoneField(load_default=None)


class BookingIn(Schema):
    customer_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    starts_at = fields.DateTime(required=True, metadata={
        "description": "ISO 8601; without an offset it is read in the company's timezone"})
    ends_at = fields.DateTime(load_default=None)
    duration_minutes = fields.Integer(load_default=None, strict=True,
                                      validate=validate.Range(min=1, max=MAX_DURATION_MINUTES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))
    call_id = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1))

    @validates_schema
    def one_end(self, data, **_kwargs):
        if (data.get("ends_at") is None) == (data.get("duration_minutes") is None):
            raise ValidationError({"ends_at": ["Give exactly one of ends_at and duration_minutes."]})


class IdempotencyHeaders(Schema):
    idempotency_key = fields.String(data_key="Idempotency-Key", load_default=None,
                                    validate=[validate.Length(min=1, max=255),
                                              validate.Regexp(r"^[\x21-\x7e]+$", error="Printable ASCII only.")])


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(APPOINTMENT_STATUSES))


class AppointmentOut(Schema):
    id = fields.Integer()
    customer_id = fields.Integer(allow_none=True)
    call_id = fields.Integer(allow_none=True)
    title = fields.String()
    notes = fields.String(allow_none=True)
    status = fields.String()
    starts_at = fields.DateTime(metadata={"description": "in the timezone of the response"})
    ends_at = fields.DateTime()
    duration_minutes = fields.Integer()
    timezone = fields.String(metadata={"description": "the timezone the times are rendered in"})
    calcom_booking_uid = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CalendarOut(Schema):
    data = fields.List(fields.Nested(AppointmentOut))
    next_cursor = fields.String(allow_none=True)
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    timezone = fields.String()


def rendered(appointment, tz):
    """The appointment as a client sees it: times on the wall clock of ``tz``."""
    return {
        "id": appointment.id, "customer_id": appointment.customer_id, "call_id": appointment.call_id,
        "title": appointment.title, "notes": appointment.notes, "status": appointment.status,
        "starts_at": appointment.starts_at.astimezone(tz),
        "ends_at": appointment.ends_at.astimezone(tz),
        "duration_minutes": int((appointment.ends_at - appointment.starts_at).total_seconds() // 60),
        "timezone": tz.key, "calcom_booking_uid": appointment.calcom_booking_uid,
        "created_at": appointment.created_at, "updated_at": appointment.updated_at,
    }


def company_zone():
    return zone_or_utc(Session.scalar(select(Company.timezone).where(Company.id == current_company_id())))


def page_in_time_order(query, args):
    """Keyset pagination in calendar order (earliest first) over (starts_at, id)."""
    if args.get("cursor") is not None:
        sort_value, last_id = args["cursor"]
        sort_value = parse_sort_value(Appointment.starts_at, sort_value)
        query = query.where(or_(Appointment.starts_at > sort_value,
                                and_(Appointment.starts_at == sort_value, Appointment.id > last_id)))
    limit = args["limit"]
    rows = Session.scalars(query.order_by(Appointment.starts_at, Appointment.id).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].starts_at.isoformat(), rows[-1].id)
    return rows, next_cursor


@blp.route("", methods=["GET"])
@blp.arguments(CalendarArgs, location="query")
@blp.response(200, CalendarOut)
@gateway_policy(permission="appointments:read", cache="appointments")
def calendar(args):
    """The calendar: appointments starting within local dates from..to (at most a year)."""
    tz = args["tz"] or company_zone()
    first, last = args["from_"], args["to"]
    if first is None:
        first = (last - dt.timedelta(days=DEFAULT_CALENDAR_DAYS - 1)) if last else business_now().astimezone(tz).date()
    if last is None:
        last = first + dt.timedelta(days=DEFAULT_CALENDAR_DAYS - 1)
    window = LocalRange(first, last, tz)
    query = select(Appointment).where(Appointment.company_id == current_company_id(),
                                      Appointment.starts_at >= window.start_utc,
                                      Appointment.starts_at < window.end_utc)
    if args["status"]:
        query = query.where(Appointment.status == args["status"])
    if args["customer_id"]:
        query = query.where(Appointment.customer_id == args["customer_id"])
    rows, next_cursor = page_in_time_order(query, args)
    return {"data": [rendered(row, tz) for row in rows], "next_cursor": next_cursor,
            "from_": first, "to": last, "timezone": tz.key}


@contextlib.contextmanager
def rolled_back_on_refusal():
    """A refused booking releases its row locks at once, not at the end of the app context."""
    try:
        yield
    except HTTPException:
        Session.rollback()
        raise


def requested_times(booking, tz):
    """UTC start and end, to the second (what every database stores alike)."""
    starts_at = as_utc(booking["starts_at"], tz).replace(microsecond=0)
    if booking["ends_at"] is not None:
        ends_at = as_utc(booking["ends_at"], tz).replace(microsecond=0)
    else:
        ends_at = starts_at + dt.timedelta(minutes=booking["duration_minutes"])
    if starts_at < business_now() - PAST_GRACE:
        abort(422, errors={"starts_at": ["Must not be in the past."]})
    if ends_at <= starts_at:
        abort(422, errors={"ends_at": ["Must be after starts_at."]})
    if ends_at - starts_at > dt.timedelta(minutes=MAX_DURATION_MINUTES):
        abort(422, errors={"ends_at": [f"An appointment lasts at most {MAX_DURATION_MINUTES} minutes."]})
    return starts_at, ends_at


def keyed_appointment(company_id, key):
    """The appointment an Idempotency-Key already created (locking read: sees the latest commit)."""
    return Session.scalar(select(Appointment).where(Appointment.company_id == company_id,
                                                    Appointment.idempotency_key == key)
                          .with_for_update().execution_options(populate_existing=True))


def replay(appointment, fingerprint):
    """Answer a retried booking exactly as the original was answered."""
    if appointment.idempotency_fingerprint != fingerprint:
        raise GatewayProblem(422, "Idempotency key reused",
                             "This Idempotency-Key was used for a different booking request.",
                             errors={"Idempotency-Key": ["Already used with a different request body."]},
                             appointment_id=appointment.id)
    body = rendered(appointment, zone_or_utc(appointment.timezone))
    Session.commit()  # nothing to write; ends the transaction and its locks
    return body, appointment.booking_status_code or 201, {"Idempotent-Replayed": "true"}


def check_links(company_id, booking):
    """The customer (and call) must be the caller's own; another company's looks like none."""
    customer = Session.scalar(select(Customer.id).where(Customer.id == booking["customer_id"],
                                                        Customer.company_id == company_id))
    if customer is None:
        abort(422, errors={"customer_id": [f"No customer with id {booking['customer_id']}."]})
    if booking["call_id"] is not None:
        call = Session.scalar(select(Call.id).where(Call.id == booking["call_id"], Call.company_id == company_id))
        if call is None:
            abort(422, errors={"call_id": [f"No call with id {booking['call_id']}."]})


def overlap_problem(clash):
    return GatewayProblem(409, "Slot not available", "The requested time overlaps another appointment.",
                          conflicting_appointment_id=clash)


class AlreadyBooked(Exception):
    """The request's Idempotency-Key has an appointment already: answer with it."""

    def __init__(self, appointment):
        super().__init__(appointment.id)
        self.appointment = appointment


def earlier_booking(company_id, key):
    original = keyed_appointment(company_id, key) if key is not None else None
    if original is not None:
        raise AlreadyBooked(original)


def insert_if_free(appointment):
    """Flush ``appointment`` unless its slot is taken; concurrent bookings are decided here.

    MariaDB: the caller holds the company row lock, so checks and insert are serialised.
    SQLite: reads are not serialised, so the slot is checked again once the insert holds
    the write lock, and a concurrent retry shows up as the unique key violation.
    """
    company_id, key = appointment.company_id, appointment.idempotency_key
    clash = Session.scalar(rules.overlapping(company_id, appointment.starts_at, appointment.ends_at))
    if clash is not None:
        earlier_booking(company_id, key)  # a retry that committed meanwhile took "our" slot
        raise overlap_problem(clash)
    Session.add(appointment)
    try:
        Session.flush()
    except IntegrityError:
        Session.rollback()
        earlier_booking(company_id, key)
        # no retry explains it, e.g. the customer was deleted meanwhile
        raise GatewayProblem(409, "Booking conflict", "The booking conflicted with a concurrent change; retry it.")
    clash = Session.scalar(rules.overlapping(company_id, appointment.starts_at, appointment.ends_at,
                                             exclude_id=appointment.id))
    if clash is not None:
        raise overlap_problem(clash)


def lock_company(company_id):
    """The company row, locked: serialises the company's bookings on MariaDB (no-op on SQLite)."""
    return Session.scalars(select(Company).where(Company.id == company_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


@blp.route("", methods=["POST"])
@blp.arguments(BookingIn)
@blp.arguments(IdempotencyHeaders, location="headers")
@blp.response(201, AppointmentOut)
@blp.alt_response(202, schema=AppointmentOut, description="Booked locally; Cal.com confirmation pending")
@blp.alt_response(409, description="Overlaps another appointment")
@gateway_policy(permission="appointments:write", resource="bookings")
def book(booking, headers):
    """Book an appointment: validated locally, stored as pending, handed to Cal.com.

    With an ``Idempotency-Key`` a retried request returns the original appointment and
    status; concurrent retries are resolved by the unique (company, key) constraint.
    """
    company_id, key = current_company_id(), headers["idempotency_key"]
    with rolled_back_on_refusal():
        company = lock_company(company_id)
        tz = zone_or_utc(company.timezone)
        starts_at, ends_at = requested_times(booking, tz)
        fingerprint = rules.booking_fingerprint({**booking, "starts_at": starts_at, "ends_at": ends_at})
        appointment = Appointment(
            company_id=company_id, customer_id=booking["customer_id"], call_id=booking["call_id"],
            title=booking["title"], notes=booking["notes"], starts_at=starts_at, ends_at=ends_at,
            status="pending", timezone=tz.key, idempotency_key=key,
            idempotency_fingerprint=fingerprint if key is not None else None)
        try:
            earlier_booking(company_id, key)
            check_links(company_id, booking)
            if not rules.within_business_hours(starts_at, ends_at, tz, company.business_hours):
                abort(422, errors={"starts_at": ["Outside the company's business hours."]})
            insert_if_free(appointment)
        except AlreadyBooked as retried:
            return replay(retried.appointment, fingerprint)
        message = bookings.queue_booking(Session, appointment)
        appointment.booking_status_code = 202  # until Cal.com confirms: a retry meanwhile gets 202
        events.emit(Session, UPDATED, company_id, user_id=current_principal().user_id,
                    appointment_id=appointment.id)
        audit(Session, "appointment.booked", "appointment", appointment.id,
              starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat(), customer_id=booking["customer_id"])
        Session.commit()
    status_code = bookings.confirm_now(message, appointment)
    if status_code != appointment.booking_status_code:
        appointment.booking_status_code = status_code
        Session.commit()
    Session.refresh(appointment)  # as stored: MySQL DATETIME keeps no fractional seconds
    return rendered(appointment, tz), status_code


@blp.route("/<int:appointment_id>", methods=["GET"])
@blp.arguments(TimezoneArgs, location="query")
@blp.response(200, AppointmentOut)
@gateway_policy(permission="appointments:read", cache="appointments")
def get_appointment(args, appointment_id):
    """One appointment, in ``?tz=`` or the timezone it was booked in."""
    appointment = get_owned_or_404(Appointment, appointment_id)
    return rendered(appointment, args["tz"] or zone_or_utc(appointment.timezone))


@blp.route("/<int:appointment_id>/status", methods=["PATCH"])
@blp.arguments(StatusIn)
@blp.response(200, AppointmentOut)
@blp.alt_response(409, description="Transition not allowed from the current status")
@gateway_policy(permission="appointments:write")
def change_status(change, appointment_id):
    """Move an appointment along its lifecycle (pending -> confirmed -> completed, ...)."""
    appointment = get_owned_or_404(Appointment, appointment_id)
    current, requested = appointment.status, change["status"]
    if not rules.transition_allowed(current, requested):
        refuse_transition(current, requested)
    # Compare-and-set: two clients changing the status at once cannot both succeed.
    changed = Session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.status == current)
        .values(status=requested, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        Session.rollback()
        refuse_transition(Session.scalar(select(Appointment.status).where(Appointment.id == appointment_id)),
                          requested)
    if requested == "cancelled":
        bookings.queue_cancellation(Session, appointment)
    events.emit(Session, UPDATED, appointment.company_id, user_id=current_principal().user_id,
                appointment_id=appointment.id)
    audit(Session, "appointment.status_changed", "appointment", appointment.id,
          **{"from": current, "to": requested})
    Session.commit()
    Session.refresh(appointment)
    return rendered(appointment, zone_or_utc(appointment.timezone))


def refuse_transition(current, requested):
    allowed = rules.ALLOWED_TRANSITIONS.get(current, ())
    raise GatewayProblem(409, "Status transition not allowed",
                         f"An appointment that is {current} cannot become {requested}"
                         + (f"; allowed: {', '.join(allowed)}." if allowed else "; it is final."),
                         current_status=current, requested_status=requested,
                         allowed_statuses=list(allowed))
