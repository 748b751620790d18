"""Cal.com booking events -> Appointment rows.

Cal.com posts ``{triggerEvent, createdAt, payload: {uid, eventTypeId, startTime, endTime,
title, attendees: [...], status, rescheduleUid?, ...}}`` signed with ``X-Cal-Signature-256``
(hex HMAC-SHA256 of the body, no timestamp), so a delivery is identified by
(triggerEvent, uid). On a reschedule ``uid`` is the new booking and ``rescheduleUid``
the booking it replaces.
"""
import datetime as dt

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import select

from ..events import emit
from ..models import Appointment, Company
from ..services.timeranges import CalendarAwareDateTime
from . import customers, signatures
from .common import IGNORED, required_setting
from .dedupe import Ignored, process_once

PROVIDER = "calcom"
CREATED, CANCELLED, RESCHEDULED = "BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED"
BOOKING_TRIGGERS = (CREATED, CANCELLED, RESCHEDULED)
STATUSES = {"ACCEPTED": "confirmed", "PENDING": "pending", "AWAITING_HOST": "pending",
            "CANCELLED": "cancelled", "REJECTED": "cancelled"}


class AttendeeSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    email = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    timeZone = fields.String(allow_none=True)
    phoneNumber = fields.String(allow_none=True)


class OrganizerSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    timeZone = fields.String(allow_none=True)


class BookingSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    uid = fields.String(required=True, validate=validate.Length(min=1, max=100))
    eventTypeId = fields.Raw(allow_none=True)
    title = fields.String(allow_none=True)
    startTime = CalendarAwareDateTime(allow_none=True, default_timezone=dt.timezone.utc)
    endTime = CalendarAwareDateTime(allow_none=True, default_timezone=dt.timezone.utc)
    status = fields.String(allow_none=True)
    attendees = fields.List(fields.Nested(AttendeeSchema), load_default=list)
    organizer = fields.Nested(OrganizerSchema, allow_none=True)
    rescheduleUid = fields.String(allow_none=True)


class CalcomEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    triggerEvent = fields.String(required=True)
    createdAt = fields.String(allow_none=True)
    payload = fields.Dict(required=True)  # shaped per trigger (PING differs), checked below


def verify(body, headers):
    secret = required_setting(PROVIDER, "CALCOM_WEBHOOK_SECRET")
    signatures.verify_calcom(secret, body, headers.get(signatures.CALCOM_HEADER))


def load_booking(trigger, payload):
    try:
        booking = BookingSchema().load(payload)
    except ValidationError as exc:
        raise ValidationError({"payload": exc.messages}) from None
    if trigger != CANCELLED:
        missing = {name: ["Missing data for required field."]
                   for name in ("startTime", "endTime") if booking.get(name) is None}
        if missing:
            raise ValidationError({"payload": missing})
    return booking


def handle(document):
    event = CalcomEventSchema().load(document)
    trigger = event["triggerEvent"]
    if trigger not in BOOKING_TRIGGERS:
        return {"status": IGNORED}
    booking = load_booking(trigger, event["payload"])
    apply = {CREATED: apply_created, CANCELLED: apply_cancelled, RESCHEDULED: apply_rescheduled}[trigger]

    def effect(session, record):
        appointment = apply(session, booking)
        record.company_id = appointment.company_id
        emit(session, "appointments.updated", appointment.company_id,
             appointment_id=appointment.id)

    return {"status": process_once(PROVIDER, f"{trigger}:{booking['uid']}", trigger, effect)}


def by_uid(session, uid):
    if not uid:
        return None
    return session.scalar(select(Appointment).where(Appointment.calcom_booking_uid == uid))


def company_for_event_type(session, event_type_id):
    company_id = session.scalar(select(Company.id).where(
        Company.calcom_event_type_id == str(event_type_id))) if event_type_id is not None else None
    if company_id is None:
        raise Ignored(f"no company links Cal.com event type {event_type_id!r}")
    return company_id


def local_status(booking, default="confirmed"):
    return STATUSES.get((booking.get("status") or "").upper(), default)


def move(appointment, booking):
    appointment.starts_at = booking["startTime"]
    appointment.ends_at = booking["endTime"]


def new_appointment(session, booking):
    """A booking made in Cal.com itself, for the company whose event type it is."""
    company_id = company_for_event_type(session, booking.get("eventTypeId"))
    attendee = (booking.get("attendees") or [{}])[0]
    timezone = attendee.get("timeZone") or (booking.get("organizer") or {}).get("timeZone") or "UTC"
    appointment = Appointment(company_id=company_id, title=(booking.get("title") or "Booking")[:200],
                              status=local_status(booking), timezone=timezone[:64],
                              calcom_booking_uid=booking["uid"])
    move(appointment, booking)
    if attendee.get("email"):
        appointment.customer_id = customers.by_email(
            session, company_id, attendee["email"], attendee.get("name"),
            customers.e164(attendee.get("phoneNumber"))).id
    session.add(appointment)
    session.flush()
    return appointment


def apply_created(session, booking):
    appointment = by_uid(session, booking["uid"])
    if appointment is None:
        return new_appointment(session, booking)
    # booked through the gateway: Cal.com confirms it
    appointment.status = local_status(booking)
    move(appointment, booking)
    return appointment


def apply_cancelled(session, booking):
    appointment = by_uid(session, booking["uid"])
    if appointment is None:
        raise Ignored(f"no appointment has Cal.com booking {booking['uid']!r}")
    appointment.status = "cancelled"
    return appointment


def apply_rescheduled(session, booking):
    appointment = by_uid(session, booking.get("rescheduleUid")) or by_uid(session, booking["uid"])
    if appointment is None:
        return new_appointment(session, booking)
    move(appointment, booking)
    appointment.calcom_booking_uid = booking["uid"]
    appointment.status = local_status(booking)
    return appointment
