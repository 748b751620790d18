"""Date ranges and calendar periods in a company's timezone.

Every boundary is computed here, in Python, from local midnights converted to UTC with
zoneinfo: a day in a DST change is 23 or 25 hours long and still one bucket. The SQL
layer only ever compares UTC timestamps against these boundaries, so SQLite and MariaDB
bucket identically without any timezone support in the database.
"""
import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

log = logging.getLogger("gateway.timeranges")
MAX_RANGE_DAYS = 366  # "at most one year": a leap year's 1 January .. 31 December
GRANULARITIES = ("day", "week", "month")

# The calendar the API accepts, for every date and date-time a client or provider sends.
# Python's stops at 0001-01-01 and 9999-12-31, and the gateway computes around what it is
# given: a timezone's offset (up to 14 hours either way), the day after a range, periods
# before it (trends), a year back from a default. Near either end each of these overflows
# (OverflowError, a 500); a century and a year of margin keeps every one of them far
# inside, and inside MariaDB's DATETIME (1000-01-01 .. 9999-12-31) too.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(9998, 12, 31)
OUT_OF_CALENDAR = f"Must lie between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}."
EARLIEST_INSTANT = dt.datetime.combine(EARLIEST_DAY, dt.time(), tzinfo=dt.timezone.utc)
LATEST_INSTANT = dt.datetime.combine(LATEST_DAY, dt.time.max, tzinfo=dt.timezone.utc)


def within_calendar(value):
    """marshmallow validator: a date or date-time (its wall-clock day) the gateway accepts."""
    day = value.date() if isinstance(value, dt.datetime) else value
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValidationError(OUT_OF_CALENDAR)


def epoch_within_calendar(per_second=1):
    """marshmallow validator of a provider's epoch timestamp (``per_second`` 1000: in ms),
    so that datetime.fromtimestamp never meets one it cannot convert (ValueError,
    OverflowError or OSError, depending on how far out it is)."""
    return validate.Range(min=int(EARLIEST_INSTANT.timestamp()) * per_second,
                          max=int(LATEST_INSTANT.timestamp()) * per_second, error=OUT_OF_CALENDAR)


class CalendarDate(fields.Date):
    """An ISO 8601 date within the accepted calendar."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, within_calendar)


class CalendarDateTime(fields.DateTime):
    """An ISO 8601 date-time within the accepted calendar (naive: wall-clock time)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, within_calendar)


class CalendarAwareDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time with an offset (or ``default_timezone``) within the calendar."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, within_calendar)


def zone(name):
    """A ZoneInfo for an IANA name; ValueError for anything zoneinfo does not know."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValueError("Not a valid IANA timezone.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"Unknown timezone {name!r}; expected an IANA name such as Europe/Berlin.")


def zone_or_utc(name):
    """A stored timezone zoneinfo does not know (any more) must not break a page: UTC."""
    try:
        return zone(name)
    except ValueError:
        log.warning("unknown stored timezone; using UTC", extra={"timezone": name})
        return ZoneInfo("UTC")


class TimezoneField(fields.String):
    """An IANA timezone name, deserialised to a ZoneInfo."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return zone(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise ValidationError(str(exc))


def local_midnight(day, tz):
    """The instant (UTC) at which ``day`` begins in ``tz``.

    zoneinfo resolves a midnight that falls in a DST gap forwards (fold=0 gives the
    pre-transition offset, which then normalises to the first existing instant).
    """
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class LocalRange:
    """Inclusive local dates ``first``..``last`` in ``tz``, and the UTC instants they span."""
    first: dt.date
    last: dt.date
    tz: ZoneInfo

    @property
    def start_utc(self):
        return local_midnight(self.first, self.tz)

    @property
    def end_utc(self):
        """Exclusive: the midnight after the last day."""
        return local_midnight(self.last + dt.timedelta(days=1), self.tz)


def range_errors(first, last, first_name="from", last_name="to"):
    """Field errors of a requested date range, or {} when it is acceptable."""
    if last < first:
        return {last_name: [f"Must not be before {first_name!r}."]}
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        return {last_name: [f"The range may span at most {MAX_RANGE_DAYS} days."]}
    return {}


def period_start(day, granularity):
    """The first day of the calendar period containing ``day`` (weeks start on Monday)."""
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown granularity {granularity!r}")


def next_period_start(start, granularity):
    if granularity == "day":
        return start + dt.timedelta(days=1)
    if granularity == "week":
        return start + dt.timedelta(days=7)
    if granularity == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    raise ValueError(f"unknown granularity {granularity!r}")


@dataclass(frozen=True)
class Period:
    """One calendar period: local dates [first, next_first) and its UTC bounds."""
    first: dt.date
    next_first: dt.date
    start_utc: dt.datetime
    end_utc: dt.datetime

    @property
    def last(self):
        return self.next_first - dt.timedelta(days=1)


def whole_range(first, last, tz):
    """Local dates ``first``..``last`` as one period."""
    window = LocalRange(first, last, tz)
    return Period(first, last + dt.timedelta(days=1), window.start_utc, window.end_utc)


def periods(first, last, granularity, tz, lead=0):
    """Whole calendar periods covering local dates ``first``..``last``.

    ``lead`` more periods are prepended (trends compare each period with the one before).
    """
    start = period_start(first, granularity)
    for _ in range(lead):
        start = period_start(start - dt.timedelta(days=1), granularity)
    result = []
    while start <= last:
        following = next_period_start(start, granularity)
        result.append(Period(start, following, local_midnight(start, tz), local_midnight(following, tz)))
        start = following
    return result


def as_utc(value, tz):
    """An aware UTC instant; a naive datetime is read as wall-clock time in ``tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(dt.timezone.utc)


class LocalDateRangeArgs(Schema):
    """``?from=&to=`` local days (inclusive) and ``?tz=``, checked as one range."""
    from_ = CalendarDate(data_key="from", load_default=None,
                         metadata={"description": "first local day"})
    to = CalendarDate(load_default=None, metadata={"description": "last local day, inclusive"})
    tz = TimezoneField(load_default=None, metadata={"description": "IANA timezone (default: the company's)"})

    @validates_schema
    def check_range(self, data, **_kwargs):
        if data.get("from_") and data.get("to"):
            errors = range_errors(data["from_"], data["to"])
            if errors:
                raise ValidationError(errors)
