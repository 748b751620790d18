"""Analytics aggregates, computed by the database: one GROUP BY query per table.

Periods come from timeranges.periods (local calendar periods as UTC instants). Each row
is assigned to its period by a balanced CASE tree over those boundaries, the same SQL on
SQLite and MariaDB, so neither database needs timezone tables or date functions, and a
row costs log2(periods) comparisons. The range filter uses the (company_id, time) indexes.
"""
from functools import lru_cache

from sqlalchemy import bindparam, case, func, literal_column, select

from gateway_app.db import count_rows_of, read_connection
from gateway_app.models import SENTIMENTS, Appointment, Call

BUCKET = "bucket"


def bucket_index(column, boundaries):
    """SQL for i such that boundaries[i] <= column < boundaries[i + 1] (rows already in range)."""
    def subtree(low, high):
        if low == high:
            return literal_column(str(low))
        middle = (low + high + 1) // 2
        return case((column < boundaries[middle], subtree(low, middle - 1)), else_=subtree(middle, high))
    return subtree(0, len(boundaries) - 2)


def _count_if(condition):
    return func.sum(case((condition, 1), else_=0))


# A statement is built once per table and number of boundaries, the boundaries and the
# company bound at execution: building the CASE tree and its cache key cost more than
# running the query.
_CALLS = Call.__table__.c
_APPOINTMENTS = Appointment.__table__.c


CALL_FIGURES = ("calls", "answered_calls", "handled_seconds", "booked_calls",
                *(f"sentiment_{sentiment}" for sentiment in SENTIMENTS))
BOOKING_FIGURES = ("bookings", "cancelled_bookings")


def _aggregates(table):
    if table == "calls":
        answered = _CALLS.status == "answered"
        figures = (func.count(_CALLS.id), _count_if(answered),
                   func.sum(case((answered, _CALLS.duration_seconds), else_=0)),
                   _count_if(_CALLS.outcome == "booked"),
                   *(_count_if(_CALLS.sentiment == sentiment) for sentiment in SENTIMENTS))
        return tuple(figure.label(name) for figure, name in zip(figures, CALL_FIGURES))
    figures = func.count(_APPOINTMENTS.id), _count_if(_APPOINTMENTS.status == "cancelled")
    return tuple(figure.label(name) for figure, name in zip(figures, BOOKING_FIGURES))


@lru_cache(maxsize=128)
def _grouped_statement(table, size):
    company_column, time_column = ((_CALLS.company_id, _CALLS.started_at) if table == "calls"
                                   else (_APPOINTMENTS.company_id, _APPOINTMENTS.created_at))
    boundaries = [bindparam(f"b{index}", type_=time_column.type) for index in range(size)]
    return (select(bucket_index(time_column, boundaries).label(BUCKET), *_aggregates(table))
            .where(company_column == bindparam("company_id"), time_column >= boundaries[0],
                   time_column < boundaries[-1])
            .group_by(literal_column(BUCKET)))


def _grouped(table, company_id, boundaries):
    """{bucket index: {figure: int}} of the table's aggregates grouped by period."""
    params = {f"b{index}": boundary for index, boundary in enumerate(boundaries)}
    params["company_id"] = company_id
    with read_connection() as connection:
        rows = count_rows_of(connection, _grouped_statement(table, len(boundaries)), params)
    return {int(row[BUCKET]): {name: int(value or 0) for name, value in row.items() if name != BUCKET}
            for row in rows}


def call_counts(company_id, boundaries):
    result = {}
    for index, row in _grouped("calls", company_id, boundaries).items():
        result[index] = {"calls": row["calls"], "answered_calls": row["answered_calls"],
                         "handled_seconds": row["handled_seconds"], "booked_calls": row["booked_calls"],
                         "sentiment": {sentiment: row[f"sentiment_{sentiment}"] for sentiment in SENTIMENTS}}
    return result


def booking_counts(company_id, boundaries):
    """Bookings are counted when they were made (created_at), not when they take place."""
    return _grouped("appointments", company_id, boundaries)


EMPTY_CALLS = {"calls": 0, "answered_calls": 0, "handled_seconds": 0, "booked_calls": 0,
               "sentiment": dict.fromkeys(SENTIMENTS, 0)}
EMPTY_BOOKINGS = {"bookings": 0, "cancelled_bookings": 0}


def period_counts(company_id, periods):
    """Raw counts for each period, in order; two queries whatever the number of periods,
    read in one transaction."""
    boundaries = [period.start_utc for period in periods] + [periods[-1].end_utc]
    with read_connection():
        calls, booked = call_counts(company_id, boundaries), booking_counts(company_id, boundaries)
    return [{**calls.get(index, EMPTY_CALLS), **booked.get(index, EMPTY_BOOKINGS)}
            for index in range(len(periods))]


def _ratio(numerator, denominator, digits):
    return round(numerator / denominator, digits) if denominator else None


def derived_metrics(counts):
    """The KPIs of one period's counts; a ratio over nothing is None, not 0."""
    return {
        "calls": counts["calls"],
        "answered_calls": counts["answered_calls"],
        "bookings": counts["bookings"],
        "cancelled_bookings": counts["cancelled_bookings"],
        "answer_rate": _ratio(counts["answered_calls"], counts["calls"], 4),
        "average_handle_time_seconds": _ratio(counts["handled_seconds"], counts["answered_calls"], 1),
        "booking_conversion": _ratio(counts["booked_calls"], counts["answered_calls"], 4),
    }


def sentiment_mix(counts):
    analysed = sum(counts["sentiment"].values())
    mix = {name: {"count": count, "share": _ratio(count, analysed, 4)}
           for name, count in counts["sentiment"].items()}
    mix["unknown"] = {"count": counts["calls"] - analysed, "share": None}
    return mix


TREND_METRICS = ("calls", "answered_calls", "bookings", "cancelled_bookings", "answer_rate",
                 "average_handle_time_seconds", "booking_conversion")


def change_between(value, previous):
    """Absolute and relative change; relative is None when there is nothing to compare with."""
    if value is None or previous is None:
        return None, None
    change = round(value - previous, 4)
    percent = round((value - previous) / previous * 100, 1) if previous else None
    return change, percent
