"""Appointments service: the calendar, booking (handed to Cal.com), status changes."""
import datetime as dt

from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import Integer, String

from blueprints.common import (ROW_ID, PageArgs, current_company_id, current_principal, encode_cursor,
                               get_owned_or_404, row_position)
from blueprints.parsing import GatewayBlueprint
from gateway_app.db import IsoInstant
from gateway_app.errors import GatewayProblem
from gateway_app.merge_patch import patched
from gateway_app.models import APPOINTMENT_STATUSES, Appointment
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import appointments, calendar_queries
from gateway_app.services.appointments import MAX_DURATION_MINUTES
from gateway_app.services.serialization import Serializer, check_rows_dump_as_is, json_response
from gateway_app.services.timeranges import CalendarDateTime, LocalDateRangeArgs, TimezoneField, zone_or_utc

blp = GatewayBlueprint("appointments", __name__, url_prefix="/api/v1/appointments",
                       description="Appointments service")

class CalendarArgs(PageArgs, LocalDateRangeArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(APPOINTMENT_STATUSES))
    customer_id = fields.Integer(load_default=None, validate=ROW_ID)


class TimezoneArgs(Schema):
    tz = TimezoneField(load_default=None)


class BookingIn(Schema):
    customer_id = fields.Integer(required=True, strict=True, validate=ROW_ID)
    starts_at = CalendarDateTime(required=True, metadata={
        "description": "ISO 8601; without an offset it is read in the company's timezone"})
    ends_at = CalendarDateTime(load_default=None)
    duration_minutes = fields.Integer(load_default=None, strict=True,
                                      validate=validate.Range(min=1, max=MAX_DURATION_MINUTES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))
    call_id = fields.Integer(load_default=None, allow_none=True, strict=True, validate=ROW_ID)

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
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
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


CALENDAR = Serializer(CalendarOut)
# a calendar row, with the values calendar_items adds, is its item as it is
check_rows_dump_as_is(AppointmentOut, calendar_queries.CALENDAR_COLUMNS, computed={
    "starts_at": IsoInstant(), "ends_at": IsoInstant(), "duration_minutes": Integer(),
    "timezone": String()})


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


def calendar_items(items, tz):
    """Calendar rows' dicts (calendar_queries.CALENDAR_COLUMNS) made what ``rendered``
    renders: start and end on the wall clock of ``tz``, as ISO text."""
    zone_name = tz.key
    for item in items:
        starts_at = dt.datetime.fromisoformat(item["starts_at"])
        ends_at = dt.datetime.fromisoformat(item["ends_at"])
        item["starts_at"] = starts_at.astimezone(tz).isoformat()
        item["ends_at"] = ends_at.astimezone(tz).isoformat()
        item["duration_minutes"] = int((ends_at - starts_at).total_seconds() // 60)
        item["timezone"] = zone_name
    return items


@blp.route("", methods=["GET"])
@blp.doc(operationId="listAppointments")
@blp.arguments(CalendarArgs(), location="query")
@blp.response(200, CalendarOut)
@gateway_policy(permission="appointments:read", cache="appointments")
def calendar(args):
    """The calendar: appointments starting within local dates from..to (at most a year)."""
    # keyset pagination in calendar order (earliest first) over (starts_at, id)
    after = row_position(args["cursor"]) if args.get("cursor") is not None else None
    limit = args["limit"]
    principal = current_principal()
    tz, first, last, rows = calendar_queries.calendar_page(
        principal.company_id, args["tz"], args["from_"], args["to"], args["status"],
        args["customer_id"], after, limit, principal.timezone)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["starts_at"], rows[-1]["id"])   # ISO text in UTC
    # CalendarOut as its dump gives it (the items checked above, the dates in ISO)
    answer = {"data": calendar_items(rows, tz), "next_cursor": next_cursor,
              "from": first.isoformat(), "to": last.isoformat(), "timezone": tz.key}
    return json_response(answer, CALENDAR.exact_only)


@blp.route("", methods=["POST"])
@blp.doc(operationId="createAppointment")
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
    try:
        booked = appointments.book(current_company_id(), current_principal().user_id, booking,
                                   headers["idempotency_key"])
    except appointments.InvalidBooking as refused:
        abort(422, errors={refused.field: [refused.message]})
    except appointments.SlotTaken as refused:
        raise GatewayProblem(409, "Slot not available", "The requested time overlaps another appointment.",
                             field="starts_at", conflicting_appointment_id=refused.conflicting_appointment_id)
    except appointments.ConcurrentChange:
        raise GatewayProblem(409, "Booking conflict", "The booking conflicted with a concurrent change; retry it.")
    except appointments.IdempotencyKeyReused as refused:
        raise GatewayProblem(422, "Idempotency key reused",
                             "This Idempotency-Key was used for a different booking request.",
                             errors={"Idempotency-Key": ["Already used with a different request body."]},
                             appointment_id=refused.appointment_id)
    body = rendered(booked.appointment, zone_or_utc(booked.appointment.timezone))
    return body, booked.status_code, ({"Idempotent-Replayed": "true"} if booked.replayed else {})


@blp.route("/<int:appointment_id>", methods=["GET"])
@blp.arguments(TimezoneArgs, location="query")
@blp.response(200, AppointmentOut)
@gateway_policy(permission="appointments:read", cache="appointments")
def get_appointment(args, appointment_id):
    """One appointment, in ``?tz=`` or the timezone it was booked in."""
    appointment = get_owned_or_404(Appointment, appointment_id)
    return rendered(appointment, args["tz"] or zone_or_utc(appointment.timezone))


@blp.route("/<int:appointment_id>/status", methods=["PATCH"])
@blp.doc(operationId="changeAppointmentStatus")
@blp.arguments(StatusIn)
@blp.response(200, AppointmentOut)
@blp.alt_response(409, description="Transition not allowed from the current status")
@gateway_policy(permission="appointments:write")
def change_status(change, appointment_id):
    """Move an appointment along its lifecycle (pending -> confirmed -> completed, ...)."""
    appointment = get_owned_or_404(Appointment, appointment_id)
    try:
        requested = patched({"status": appointment.status}, change)["status"]
        appointments.change_status(appointment, requested, current_principal().user_id)
    except appointments.TransitionRefused as refused:
        allowed = refused.allowed
        raise GatewayProblem(409, "Status transition not allowed",
                             f"An appointment that is {refused.current} cannot become {refused.requested}"
                             + (f"; allowed: {', '.join(allowed)}." if allowed else "; it is final."),
                             current_status=refused.current, requested_status=refused.requested,
                             allowed_statuses=list(allowed))
    return rendered(appointment, zone_or_utc(appointment.timezone))
