"""Dashboard service: overview, KPI tiles against the previous period, activity feed."""
from marshmallow import Schema, fields, validate

from blueprints.parsing import GatewayBlueprint
from gateway_app.clock import business_now
from gateway_app.models import APPOINTMENT_STATUSES, CALL_DIRECTIONS, CALL_OUTCOMES, CALL_STATUSES
from gateway_app.openapi import any_of_components
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import dashboard_queries
from gateway_app.services.periods import PERIODS
from gateway_app.services.serialization import Serializer, json_response

from .common import PageArgs, current_company_id, current_principal, encode_cursor, page_schema

blp = GatewayBlueprint("dashboard", __name__, url_prefix="/api/v1/dashboard", description="Dashboard service")
POLICY = dict(permission="dashboard:read", cache="dashboard")


class CallCounts(Schema):
    total = fields.Integer()
    answered = fields.Integer()
    missed = fields.Integer()


class CallsOverview(Schema):
    today = fields.Nested(CallCounts)
    this_week = fields.Nested(CallCounts)


class BookedFromCalls(Schema):
    today = fields.Integer()
    this_week = fields.Integer()


class UpcomingAppointment(Schema):
    id = fields.Integer()
    title = fields.String()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
    customer_id = fields.Integer(allow_none=True)


class Upcoming(Schema):
    count = fields.Integer()
    next = fields.List(fields.Nested(UpcomingAppointment))


class OverviewOut(Schema):
    timezone = fields.String()
    today_start = fields.DateTime()
    week_start = fields.DateTime(metadata={"description": "Monday 00:00 in the company's timezone."})
    calls = fields.Nested(CallsOverview)
    appointments_booked_from_calls = fields.Nested(BookedFromCalls)
    upcoming_appointments = fields.Nested(Upcoming)
    conversion_rate = fields.Float(metadata={
        "description": "Share of this week's answered calls that booked an appointment."})


class MetricsArgs(Schema):
    period = fields.String(load_default="day", validate=validate.OneOf(PERIODS))


class Tile(Schema):
    key = fields.String()
    label = fields.String()
    value = fields.Float()
    previous = fields.Float()
    change = fields.Float()
    change_percent = fields.Float(allow_none=True, metadata={
        "description": "Change relative to the previous period; null when it was 0."})


class Span(Schema):
    from_ = fields.DateTime(data_key="from", attribute="from")
    to = fields.DateTime()


class MetricsOut(Schema):
    period = fields.String(validate=validate.OneOf(PERIODS))
    timezone = fields.String()
    current = fields.Nested(Span, metadata={"description": "This period so far."})
    previous = fields.Nested(Span, metadata={
        "description": "The previous period up to the same elapsed time."})
    tiles = fields.List(fields.Nested(Tile))


class ActivityCallData(Schema):
    direction = fields.String(validate=validate.OneOf(CALL_DIRECTIONS))
    status = fields.String(validate=validate.OneOf(CALL_STATUSES))
    outcome = fields.String(allow_none=True, validate=validate.OneOf(CALL_OUTCOMES))
    customer_id = fields.Integer(allow_none=True)
    summary = fields.String(allow_none=True)


class ActivityBookingData(Schema):
    title = fields.String()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
    starts_at = fields.DateTime()
    customer_id = fields.Integer(allow_none=True)
    call_id = fields.Integer(allow_none=True)


class ActivityCustomerData(Schema):
    action = fields.String(metadata={"description": "The audit action, e.g. customer.created."})
    customer_id = fields.Integer(allow_none=True)
    customer_name = fields.String(allow_none=True)
    fields_ = fields.List(fields.String(), data_key="fields", metadata={"description": "The members changed."})
    user_id = fields.Integer(allow_none=True)


ACTIVITY_DATA = {"call": ActivityCallData, "booking": ActivityBookingData, "customer": ActivityCustomerData}


class ActivityItemOut(Schema):
    type = fields.String(attribute="kind", validate=validate.OneOf(sorted(ACTIVITY_DATA)))
    id = fields.Integer()
    at = fields.DateTime()
    data = fields.Dict(metadata={**any_of_components(*ACTIVITY_DATA.values()),
                                 "description": "By type: ActivityCallData, ActivityBookingData, "
                                                "ActivityCustomerData."})


ActivityPage = page_schema(ActivityItemOut, "DashboardActivityPage")
OVERVIEW = Serializer(OverviewOut)
METRICS = Serializer(MetricsOut)


@blp.route("/overview")
@blp.doc(operationId="getDashboardOverview")
@blp.response(200, OverviewOut)
@gateway_policy(**POLICY)
def overview():
    """Calls today and this week, bookings from calls, upcoming appointments, conversion."""
    principal = current_principal()
    answer = dashboard_queries.overview(principal.company_id, business_now(), principal.timezone)
    return json_response(OVERVIEW.one(answer), OVERVIEW.exact_only)


@blp.route("/metrics")
@blp.doc(operationId="getDashboardMetrics")
@blp.arguments(MetricsArgs(), location="query")
@blp.response(200, MetricsOut)
@gateway_policy(**POLICY)
def metrics(args):
    """KPI tiles for this day/week/month so far against the same stretch of the previous one."""
    principal = current_principal()
    answer = dashboard_queries.metrics(principal.company_id, args["period"], business_now(), principal.timezone)
    return json_response(METRICS.one(answer), METRICS.exact_only)


@blp.route("/activity")
@blp.doc(operationId="listDashboardActivity")
@blp.arguments(PageArgs, location="query")
@blp.response(200, ActivityPage)
@gateway_policy(**POLICY)
def activity(args):
    """Calls, bookings and customer changes in one feed, newest first."""
    page = dashboard_queries.activity_page(current_company_id(), args, encode_cursor)
    page["data"] = [{"type": entry["kind"], "id": entry["id"], "at": entry["at"], "data": activity_data(entry)}
                    for entry in page["data"]]
    # what ActivityPage dumps: the items are its dicts already, their data text, ints,
    # None and lists of text, which json_response writes as jsonify does
    return json_response(page)


ACTIVITY_SHOWN = {"call": ("direction", "status", "outcome", "customer_id", "summary"),
                  "booking": ("title", "status", "starts_at", "customer_id", "call_id"),
                  "customer": ("action", "customer_id", "customer_name", "user_id")}


def activity_data(entry):
    """What an entry of the feed shows of its row, by its kind."""
    data = {key: entry[key] for key in ACTIVITY_SHOWN[entry["kind"]]}
    if entry["kind"] == "customer":
        data["fields"] = (entry["details"] or {}).get("fields", [])
    return data
