"""A booking must reach Cal.com: it travels through the outbox (kind ``calcom.booking``)."""
from .outbox import enqueue

BOOKING_KIND = "calcom.booking"


def submit_booking(session, appointment):
    """Queue the Cal.com booking of ``appointment`` in the caller's transaction.

    Call before commit, with the appointment flushed (it needs its id). Returns the HTTP
    status the booking answers: 202 while the booking waits in the outbox.
    """
    enqueue(session, BOOKING_KIND, {"appointment_id": appointment.id},
            company_id=appointment.company_id)
    return 202
