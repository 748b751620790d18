"""Time boundaries in the company's timezone, computed in Python as aware UTC datetimes.

Queries then compare indexed timestamp columns with plain ranges, which reads the same
on SQLite and MariaDB (no dialect date functions) and keeps the indexes usable.
"""
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select

from ..db import read_connection, utcnow
from ..models import Company

UTC = dt.timezone.utc
PERIODS = ("day", "week", "month")


_COMPANIES = Company.__table__.c
# Core, built once: an ORM select built and compiled per call cost as much as the query
_ZONE_OF_COMPANY = select(_COMPANIES.timezone).where(_COMPANIES.id == bindparam("company_id"))


def stored_zone_name(company_id):
    """The timezone name the company's row holds (None if no such company)."""
    with read_connection() as connection:
        return connection.execute(_ZONE_OF_COMPANY, {"company_id": company_id}).scalar()


def company_zone(company_id, known=None):
    """The company's ZoneInfo (UTC for a name zoneinfo does not know). ``known``: its
    name as the caller's principal carries it (Principal.timezone), so that no statement
    reads it; None reads the company's row."""
    name = known if known is not None else stored_zone_name(company_id)
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_midnight(day, zone):
    """The UTC instant a local calendar day starts (not always 00:00 wall time on DST days)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(UTC)


def period_start(now_local, period):
    """The first local day of the day/week (Monday)/month containing ``now_local``."""
    today = now_local.date()
    if period == "day":
        return today
    if period == "week":
        return today - dt.timedelta(days=today.weekday())
    return today.replace(day=1)


def previous_period_start(start_day, period):
    if period == "day":
        return start_day - dt.timedelta(days=1)
    if period == "week":
        return start_day - dt.timedelta(days=7)
    return (start_day - dt.timedelta(days=1)).replace(day=1)


class Window:
    """The current period so far and the same stretch of the previous one (fair comparison)."""

    def __init__(self, zone, period, now=None):
        now = now or utcnow()
        start_day = period_start(now.astimezone(zone), period)
        self.period = period
        self.current_start = local_midnight(start_day, zone)
        self.now = now
        self.previous_start = local_midnight(previous_period_start(start_day, period), zone)
        # the previous period up to the same elapsed time, never past its own end
        self.previous_end = min(self.previous_start + (now - self.current_start), self.current_start)


def today_and_week(zone, now=None):
    """(start of today, start of this week) in ``zone``, as UTC instants."""
    now = now or utcnow()
    local = now.astimezone(zone)
    return (local_midnight(period_start(local, "day"), zone),
            local_midnight(period_start(local, "week"), zone))


def resolve_bound(value, zone, end=False):
    """A date or date-time filter value as a UTC instant.

    A date means its local midnight, or the next one for the end of a range, so that
    ``to=2026-03-01`` includes that whole day. A naive date-time is local time.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    return local_midnight(value + dt.timedelta(days=1) if end else value, zone)
