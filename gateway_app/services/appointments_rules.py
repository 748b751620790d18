"""What makes a booking acceptable: business hours, overlaps, status transitions, retries."""
import datetime as dt
import hashlib
import json
import logging
import re

from sqlalchemy import select

from gateway_app.models import Appointment

log = logging.getLogger("gateway.appointments")

# The lifecycle: a booking waits for Cal.com (pending), is confirmed or cancelled, and a
# confirmed one ends as completed, no-show or cancelled. Terminal states never change.
ALLOWED_TRANSITIONS = {
    "pending": ("confirmed", "cancelled"),
    "confirmed": ("cancelled", "completed", "no_show"),
    "cancelled": (),
    "completed": (),
    "no_show": (),
}
# Only these block a slot: a cancelled appointment frees it.
BLOCKING_STATUSES = ("pending", "confirmed", "completed", "no_show")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def transition_allowed(current, requested):
    return requested in ALLOWED_TRANSITIONS.get(current, ())


def _minutes(clock):
    """'09:30' -> 570; '24:00' (end of day) -> 1440."""
    match = _CLOCK.match(clock) if isinstance(clock, str) else None
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"not a HH:MM time: {clock!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def opening_intervals(business_hours):
    """{weekday index: [(open minute, close minute), ...]}, or None when always open.

    A day the company lists wrongly is treated as closed (and logged), so a bad setting
    refuses bookings instead of accepting them at any hour.
    """
    if not business_hours:
        return None
    intervals = {}
    for index, name in enumerate(WEEKDAYS):
        day = []
        for entry in business_hours.get(name) or ():
            try:
                opens, closes = (_minutes(value) for value in entry)
            except (TypeError, ValueError):
                log.warning("ignoring malformed business hours", extra={"day": name, "entry": entry})
                day = []
                break
            if opens < closes:
                day.append((opens, closes))
        intervals[index] = day
    return intervals


def within_business_hours(starts_at, ends_at, tz, business_hours):
    """Whether [starts_at, ends_at) lies inside one opening interval of its local day."""
    intervals = opening_intervals(business_hours)
    if intervals is None:
        return True
    local_start, local_end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    day = local_start.date()
    start_minute = local_start.hour * 60 + local_start.minute
    if local_end.date() == day:
        end_minute = local_end.hour * 60 + local_end.minute + (1 if local_end.second or local_end.microsecond else 0)
    elif local_end.date() == day + dt.timedelta(days=1) and local_end.time() == dt.time(0):
        end_minute = 24 * 60
    else:
        return False
    return any(opens <= start_minute and end_minute <= closes
               for opens, closes in intervals[day.weekday()])


def overlapping(company_id, starts_at, ends_at, exclude_id=None):
    """Blocking appointments of the company that intersect [starts_at, ends_at).

    A locking read: under MariaDB's REPEATABLE READ it sees rows committed after the
    request's snapshot was taken, which a plain SELECT would not.
    """
    query = select(Appointment.id).where(
        Appointment.company_id == company_id,
        Appointment.status.in_(BLOCKING_STATUSES),
        Appointment.starts_at < ends_at,
        Appointment.ends_at > starts_at,
    )
    if exclude_id is not None:
        query = query.where(Appointment.id != exclude_id)
    return query.order_by(Appointment.starts_at).limit(1).with_for_update()


def booking_fingerprint(booking):
    """A digest of what was asked for, so a retried Idempotency-Key can be told from a reuse."""
    canonical = {
        "customer_id": booking["customer_id"],
        "call_id": booking.get("call_id"),
        "starts_at": booking["starts_at"].astimezone(dt.timezone.utc).isoformat(),
        "ends_at": booking["ends_at"].astimezone(dt.timezone.utc).isoformat(),
        "title": booking["title"],
        "notes": booking.get("notes"),
    }
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()
