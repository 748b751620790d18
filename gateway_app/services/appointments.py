"""Booking an appointment and moving it along its lifecycle: the transactions.

The appointments blueprint parses the request, calls ``book`` or ``change_status`` and
turns the outcome, or one of the refusals below, into the HTTP answer.
"""
import contextlib
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway_app import bookings, events
from gateway_app.audit import audit
from gateway_app.clock import business_now
from gateway_app.db import Session, utcnow
from gateway_app.models import Appointment, Call, Company, Customer
from gateway_app.services import appointments_rules as rules
from gateway_app.services.timeranges import as_utc, zone_or_utc

MAX_DURATION_MINUTES = 24 * 60
PAST_GRACE = dt.timedelta(minutes=5)  # a slot agreed on a call may be posted a moment late
UPDATED = "appointments.updated"


class BookingRefused(Exception):
    """Base of what the caller is told instead of an appointment; nothing was stored."""


class InvalidBooking(BookingRefused):
    """The request cannot be booked as asked, because of ``field``."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


class SlotTaken(BookingRefused):
    def __init__(self, conflicting_appointment_id):
        super().__init__(conflicting_appointment_id)
        self.conflicting_appointment_id = conflicting_appointment_id


class ConcurrentChange(BookingRefused):
    """The insert conflicted with a concurrent change that no retry of ours explains."""


class IdempotencyKeyReused(BookingRefused):
    def __init__(self, appointment_id):
        super().__init__(appointment_id)
        self.appointment_id = appointment_id


class TransitionRefused(Exception):
    def __init__(self, current, requested):
        super().__init__(f"{current} -> {requested}")
        self.current = current
        self.requested = requested
        self.allowed = rules.ALLOWED_TRANSITIONS.get(current, ())


@dataclass
class Booked:
    appointment: Appointment
    status_code: int        # 201 confirmed by Cal.com, 202 waiting in the outbox
    replayed: bool = False  # answered from an earlier request with the same Idempotency-Key


@contextlib.contextmanager
def rolled_back_on_refusal():
    """A refused booking releases its row locks at once, not at the end of the app context."""
    try:
        yield
    except BookingRefused:
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
        raise InvalidBooking("starts_at", "Must not be in the past.")
    if ends_at <= starts_at:
        raise InvalidBooking("ends_at", "Must be after starts_at.")
    if ends_at - starts_at > dt.timedelta(minutes=MAX_DURATION_MINUTES):
        raise InvalidBooking("ends_at", f"An appointment lasts at most {MAX_DURATION_MINUTES} minutes.")
    return starts_at, ends_at


def keyed_appointment(company_id, key):
    """The appointment an Idempotency-Key already created (locking read: sees the latest commit)."""
    return Session.scalar(select(Appointment).where(Appointment.company_id == company_id,
                                                    Appointment.idempotency_key == key)
                          .with_for_update().execution_options(populate_existing=True))


def replay(appointment, fingerprint):
    """Answer a retried booking exactly as the original was answered."""
    if appointment.idempotency_fingerprint != fingerprint:
        raise IdempotencyKeyReused(appointment.id)
    Session.commit()  # nothing to write; ends the transaction and its locks
    return Booked(appointment, appointment.booking_status_code or 201, replayed=True)


def check_links(company_id, booking):
    """The customer (and call) must be the caller's own; another company's looks like none."""
    customer = Session.scalar(select(Customer.id).where(Customer.id == booking["customer_id"],
                                                        Customer.company_id == company_id))
    if customer is None:
        raise InvalidBooking("customer_id", f"No customer with id {booking['customer_id']}.")
    if booking["call_id"] is not None:
        call = Session.scalar(select(Call.id).where(Call.id == booking["call_id"], Call.company_id == company_id))
        if call is None:
            raise InvalidBooking("call_id", f"No call with id {booking['call_id']}.")


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
        raise SlotTaken(clash)
    Session.add(appointment)
    try:
        Session.flush()
    except IntegrityError:
        Session.rollback()
        earlier_booking(company_id, key)
        raise ConcurrentChange()  # no retry explains it, e.g. the customer was deleted meanwhile
    clash = Session.scalar(rules.overlapping(company_id, appointment.starts_at, appointment.ends_at,
                                             exclude_id=appointment.id))
    if clash is not None:
        raise SlotTaken(clash)


def lock_company(company_id):
    """The company row, locked: serialises the company's bookings on MariaDB (no-op on SQLite)."""
    return Session.scalars(select(Company).where(Company.id == company_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def book(company_id, user_id, booking, key=None):
    """Store ``booking`` as a pending appointment with its Cal.com outbox message, then
    try Cal.com at once. Returns ``Booked``; raises a ``BookingRefused``.

    With an Idempotency-Key ``key`` a retried request gets the original appointment and
    status; concurrent retries are resolved by the unique (company, key) constraint.
    """
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
                raise InvalidBooking("starts_at", "Outside the company's business hours.")
            insert_if_free(appointment)
        except AlreadyBooked as retried:
            return replay(retried.appointment, fingerprint)
        message = bookings.queue_booking(Session, appointment)
        appointment.booking_status_code = 202  # until Cal.com confirms: a retry meanwhile gets 202
        events.emit(Session, UPDATED, company_id, user_id=user_id, appointment_id=appointment.id)
        audit(Session, "appointment.booked", "appointment", appointment.id,
              starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat(), customer_id=booking["customer_id"])
        Session.commit()
    status_code = bookings.confirm_now(message, appointment)
    if status_code != appointment.booking_status_code:
        appointment.booking_status_code = status_code
        Session.commit()
    Session.refresh(appointment)  # as stored: MySQL DATETIME keeps no fractional seconds
    return Booked(appointment, status_code)


def change_status(appointment, requested, user_id):
    """Move ``appointment`` to ``requested``, or raise TransitionRefused naming the status
    it has now. Cancelling also cancels its Cal.com booking, through the outbox."""
    appointment_id, current = appointment.id, appointment.status
    if not rules.transition_allowed(current, requested):
        raise TransitionRefused(current, requested)
    # Compare-and-set: two clients changing the status at once cannot both succeed.
    changed = Session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.status == current)
        .values(status=requested, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        Session.rollback()
        raise TransitionRefused(
            Session.scalar(select(Appointment.status).where(Appointment.id == appointment_id)), requested)
    if requested == "cancelled":
        bookings.queue_cancellation(Session, appointment)
    events.emit(Session, UPDATED, appointment.company_id, user_id=user_id, appointment_id=appointment.id)
    audit(Session, "appointment.status_changed", "appointment", appointment.id,
          **{"from": current, "to": requested})
    Session.commit()
    Session.refresh(appointment)
    return appointment
