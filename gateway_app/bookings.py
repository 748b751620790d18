"""A booking must reach Cal.com: it travels through the outbox (kind ``calcom.booking``).

``queue_booking`` stores the outbox message with the appointment; after that commit,
``confirm_now`` tries Cal.com right away within ``booking_confirm_timeout`` when its
breaker is closed; otherwise (or if that attempt fails) the worker delivers it later and
the client got 202.
"""
import datetime as dt
from functools import partial

from flask import current_app

from . import outbox
from .breakers import breaker_for
from .db import Session
from .events import emit
from .integrations.calcom import CalcomClient
from .integrations.http import client_for, outbox_delivery
from .models import Appointment, Company, Customer
from .notifications import queue_email
from .outbox import enqueue

BOOKING_KIND = "calcom.booking"
CANCELLATION_KIND = "calcom.cancellation"
SEARCH_MARGIN = dt.timedelta(minutes=1)


def queue_booking(session, appointment):
    """Add the Cal.com booking of ``appointment`` to the outbox, in the caller's transaction.

    Call with the appointment added and flushed (it needs its id), before the commit
    that stores both; then call ``confirm_now`` after that commit.
    """
    return enqueue(session, BOOKING_KIND, {"appointment_id": appointment.id},
                   company_id=appointment.company_id)


def confirm_now(message, appointment):
    """After the commit: when Cal.com looks healthy, deliver the booking right away.

    Returns the HTTP status for the client: 201 when Cal.com confirmed within
    ``booking_confirm_timeout`` (the appointment is "confirmed"), 202 when the booking
    waits in the outbox for the worker.
    """
    if not can_confirm_now() or not outbox.claim(message.id):
        return 202
    timeout = current_app.extensions["gateway"].policy["integrations"]["booking_confirm_timeout"]
    outbox.deliver_one(message.id, handler=partial(deliver_booking, timeout=timeout))
    return 201 if appointment.status == "confirmed" else 202


def submit_booking(session, appointment):
    """``queue_booking``, commit, ``confirm_now``: for callers with nothing else to store."""
    message = queue_booking(session, appointment)
    session.commit()
    return confirm_now(message, appointment)


def can_confirm_now():
    calcom = client_for(CalcomClient)
    return calcom.configured and breaker_for("calcom").current_state == "closed"


def booking_reference(appointment):
    """Our key for the booking in Cal.com's metadata (Cal.com has no idempotency keys)."""
    return f"gw-appointment-{appointment.id}"


def deliver_booking(message, timeout=None):
    """Outbox handler: create the Cal.com booking once, confirm the appointment."""
    appointment = Session.get(Appointment, message.payload["appointment_id"])
    if appointment is None or appointment.status == "cancelled":
        return None
    if appointment.calcom_booking_uid:
        return appointment.calcom_booking_uid
    company = Session.get(Company, appointment.company_id)
    event_type_id = company.calcom_event_type_id or (company.integrations or {}).get("calcom_event_type_id")
    if not str(event_type_id or "").isdigit():
        raise outbox.PermanentFailure(f"the company has no valid Cal.com event type linked "
                                      f"({event_type_id!r})")
    customer = Session.get(Customer, appointment.customer_id) if appointment.customer_id else None
    calcom = client_for(CalcomClient)
    reference = booking_reference(appointment)
    with outbox_delivery():
        booking = None
        if message.attempts > 1:  # an earlier attempt may have reached Cal.com before failing
            booking = calcom.find_booking(event_type_id, appointment.starts_at - SEARCH_MARGIN,
                                          appointment.ends_at + SEARCH_MARGIN, reference)
        if booking is None:
            booking = calcom.create_booking(
                event_type_id, appointment.starts_at, attendee_of(appointment, customer),
                {"gateway_reference": reference, "appointment_id": str(appointment.id)},
                timeout=timeout)
    confirm(appointment, booking, customer)
    return booking["uid"]


def attendee_of(appointment, customer):
    attendee = {"name": (customer.name if customer else None) or appointment.title,
                "timeZone": appointment.timezone or "UTC"}
    if customer and customer.email:
        attendee["email"] = customer.email
    if customer and customer.phone:
        attendee["phoneNumber"] = customer.phone
    return attendee


def confirm(appointment, booking, customer):
    appointment.calcom_booking_uid = booking["uid"]
    Session.refresh(appointment, ["status"])
    if appointment.status == "cancelled":
        # cancelled while Cal.com was booking it: undo the booking there too
        queue_cancellation(Session, appointment)
        return
    appointment.status = "confirmed"
    emit(Session, "appointments.updated", appointment.company_id, appointment_id=appointment.id)
    if customer and customer.email:
        when = appointment.starts_at.strftime("%Y-%m-%d %H:%M UTC")
        queue_email(Session, appointment.company_id, customer.email,
                    f"Your appointment is confirmed: {appointment.title}",
                    f"Hello {customer.name},\n\nyour appointment '{appointment.title}' on {when} "
                    f"is confirmed.\n", category="booking_confirmation")


def queue_cancellation(session, appointment, reason="Cancelled through the gateway"):
    """Tell Cal.com an appointment is cancelled, through the outbox, in the caller's transaction.

    A booking that never reached Cal.com needs nothing: its outbox message skips a
    cancelled appointment.
    """
    return enqueue(session, CANCELLATION_KIND, {"appointment_id": appointment.id, "reason": reason},
                   company_id=appointment.company_id)


def deliver_cancellation(message):
    """Outbox handler: cancel the appointment's Cal.com booking, if it has one."""
    appointment = Session.get(Appointment, message.payload["appointment_id"])
    if appointment is None or not appointment.calcom_booking_uid:
        return None
    calcom = client_for(CalcomClient)
    with outbox_delivery():
        calcom.cancel_booking(appointment.calcom_booking_uid, message.payload["reason"])
    return appointment.calcom_booking_uid
