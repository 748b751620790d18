"""Analytics service: reports, KPIs and trends over calls and bookings."""
import datetime as dt

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from blueprints.common import current_company_id, current_principal
from blueprints.parsing import GatewayBlueprint
from gateway_app.clock import business_now
from gateway_app.db import Session
from gateway_app.models import SENTIMENTS, Company
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import analytics_queries as queries
from gateway_app.services.serialization import Serializer, json_response
from gateway_app.services.timeranges import (GRANULARITIES, LocalDateRangeArgs, periods, whole_range,
                                             zone_or_utc)

blp = GatewayBlueprint("analytics", __name__, url_prefix="/api/v1/analytics", description="Analytics service")

DEFAULT_RANGE_DAYS = 30


class RangeArgs(LocalDateRangeArgs):
    """Defaults: ``to`` today, ``from`` 29 days before it."""


class SeriesArgs(RangeArgs):
    granularity = fields.String(load_default="day", validate=validate.OneOf(GRANULARITIES))


class TrendArgs(SeriesArgs):
    metric = fields.String(load_default="calls", validate=validate.OneOf(queries.TREND_METRICS))


class RangeOut(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    timezone = fields.String()


class Metrics(Schema):
    calls = fields.Integer()
    answered_calls = fields.Integer()
    bookings = fields.Integer(metadata={"description": "appointments booked (created) in the period"})
    cancelled_bookings = fields.Integer()
    answer_rate = fields.Float(allow_none=True, metadata={"description": "answered / all calls"})
    average_handle_time_seconds = fields.Float(allow_none=True, metadata={"description": "over answered calls"})
    booking_conversion = fields.Float(allow_none=True,
                                      metadata={"description": "calls with outcome booked / answered calls"})


class ReportPeriod(Metrics):
    period_start = fields.Date()
    period_end = fields.Date(metadata={"description": "last day of the period, inclusive"})


class ReportOut(RangeOut):
    granularity = fields.String()
    periods = fields.List(fields.Nested(ReportPeriod))
    totals = fields.Nested(Metrics)


class SentimentShare(Schema):
    count = fields.Integer()
    share = fields.Float(allow_none=True, metadata={"description": "of calls with a sentiment"})


class KpiOut(RangeOut, Metrics):
    sentiment = fields.Dict(keys=fields.String(), values=fields.Nested(SentimentShare),
                            metadata={"description": f"{', '.join(SENTIMENTS)} and unknown"})


def metric_value(description=None):
    """A count stays an integer and a rate a float: Float() would print every count as 3.0."""
    metadata = {"type": "number", **({"description": description} if description else {})}
    return fields.Raw(allow_none=True, metadata=metadata)


class TrendPoint(Schema):
    period_start = fields.Date()
    period_end = fields.Date()
    value = metric_value()
    previous = metric_value("the value of the period before")
    change = metric_value("value - previous")
    change_percent = fields.Float(allow_none=True)


class TrendOut(RangeOut):
    granularity = fields.String()
    metric = fields.String()
    points = fields.List(fields.Nested(TrendPoint))


REPORT, KPIS, TREND = Serializer(ReportOut), Serializer(KpiOut), Serializer(TrendOut)


def requested_range(args):
    """(first day, last day, zone): defaults to the last 30 days in the company's timezone."""
    tz = args["tz"] or zone_or_utc(current_principal().timezone or Session.scalar(
        select(Company.timezone).where(Company.id == current_company_id())))
    last = args["to"] or (args["from_"] + dt.timedelta(days=DEFAULT_RANGE_DAYS - 1) if args["from_"]
                          else business_now().astimezone(tz).date())
    first = args["from_"] or last - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    return first, last, tz


def period_bounds(period):
    return {"period_start": period.first, "period_end": period.last}


@blp.route("/reports", methods=["GET"])
@blp.doc(operationId="getAnalyticsReports")
@blp.arguments(SeriesArgs(), location="query")
@blp.response(200, ReportOut)
@gateway_policy(permission="analytics:read", cache="analytics")
def reports(args):
    """Calls and bookings per day, week (Monday first) or month: whole periods covering the range."""
    first, last, tz = requested_range(args)
    buckets = periods(first, last, args["granularity"], tz)
    counts = queries.period_counts(current_company_id(), buckets)
    totals = {key: sum(item[key] for item in counts)
              for key in ("calls", "answered_calls", "handled_seconds", "booked_calls", "bookings",
                          "cancelled_bookings")}
    answer = {"from_": first, "to": last, "timezone": tz.key, "granularity": args["granularity"],
              "periods": [{**period_bounds(period), **queries.derived_metrics(item)}
                          for period, item in zip(buckets, counts)],
              "totals": queries.derived_metrics(totals)}
    return json_response(REPORT.one(answer), REPORT.exact_only)


@blp.route("/kpis", methods=["GET"])
@blp.doc(operationId="getAnalyticsKpis")
@blp.arguments(RangeArgs(), location="query")
@blp.response(200, KpiOut)
@gateway_policy(permission="analytics:read", cache="analytics")
def kpis(args):
    """Answer rate, average handle time, booking conversion and sentiment mix over the range."""
    first, last, tz = requested_range(args)
    counts = queries.period_counts(current_company_id(), [whole_range(first, last, tz)])[0]
    answer = {"from_": first, "to": last, "timezone": tz.key, **queries.derived_metrics(counts),
              "sentiment": queries.sentiment_mix(counts)}
    return json_response(KPIS.one(answer), KPIS.exact_only)


@blp.route("/trends", methods=["GET"])
@blp.doc(operationId="getAnalyticsTrends")
@blp.arguments(TrendArgs(), location="query")
@blp.response(200, TrendOut)
@gateway_policy(permission="analytics:read", cache="analytics")
def trends(args):
    """One metric per period, each compared with the period before it (also for the first)."""
    first, last, tz = requested_range(args)
    buckets = periods(first, last, args["granularity"], tz, lead=1)
    values = [queries.derived_metrics(item)[args["metric"]]
              for item in queries.period_counts(current_company_id(), buckets)]
    points = []
    for period, previous, value in zip(buckets[1:], values, values[1:]):
        change, percent = queries.change_between(value, previous)
        points.append({**period_bounds(period), "value": value, "previous": previous,
                       "change": change, "change_percent": percent})
    answer = {"from_": first, "to": last, "timezone": tz.key, "granularity": args["granularity"],
              "metric": args["metric"], "points": points}
    return json_response(TREND.one(answer), TREND.exact_only)
