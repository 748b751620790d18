"""Calls service: the call log, one call's details, its recording, and the CSV export."""
import datetime as dt

from flask import Response, stream_with_context, url_for
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import GatewayProblem
from gateway_app.files import FileMissing
from gateway_app.models import (APPOINTMENT_STATUSES, CALL_DIRECTIONS, CALL_OUTCOMES, CALL_STATUSES, SENTIMENTS,
                                Call)
from gateway_app.openapi import text_body
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import call_exports, calls_queries, recordings
from gateway_app.services.calls_queries import CALLS, csv_chunks, export_rows
from gateway_app.services.periods import UTC, company_zone, resolve_bound
from gateway_app.services.serialization import Serializer, check_rows_dump_as_is, json_response
from gateway_app.services.timeranges import within_calendar

from .common import (ROW_ID, PageArgs, current_company_id, current_principal, get_owned_or_404, page_fetched_newest_first,
                     page_schema)
from .downloads import download_response

blp = GatewayBlueprint("calls", __name__, url_prefix="/api/v1/calls", description="Calls service")

MAX_RANGE = dt.timedelta(days=366)


class DateOrDateTime(fields.Field):
    """``2026-03-01`` (a whole local day) or an ISO 8601 date-time (naive = company time),
    within the calendar the API accepts (services/timeranges.py)."""

    default_error_messages = {"invalid": "Not a valid ISO 8601 date or date-time."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, within_calendar)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid") from None


class CallFilterArgs(Schema):
    from_ = DateOrDateTime(data_key="from", load_default=None, metadata={
        "type": "string", "format": "date-or-date-time",
        "description": "Start of the range (inclusive): a date or a date-time."})
    to = DateOrDateTime(load_default=None, metadata={
        "type": "string", "format": "date-or-date-time",
        "description": "End of the range: a date includes that whole day, a date-time is exclusive."})
    direction = fields.String(load_default=None, validate=validate.OneOf(CALL_DIRECTIONS))
    status = fields.String(load_default=None, validate=validate.OneOf(CALL_STATUSES))
    sentiment = fields.String(load_default=None, validate=validate.OneOf(SENTIMENTS))
    outcome = fields.String(load_default=None, validate=validate.OneOf(CALL_OUTCOMES))
    customer_id = fields.Integer(load_default=None, validate=ROW_ID)
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                      metadata={"description": "Words to find in call summaries."})

    @validates_schema
    def range_is_bounded(self, data, **kwargs):
        # validated in UTC: the company's timezone moves the bounds by hours, not by a year
        start = resolve_bound(data.get("from_"), UTC)
        end = resolve_bound(data.get("to"), UTC, end=True)
        if start is None or end is None:
            return
        if end <= start:
            raise ValidationError("Must be after 'from'.", "to")
        if end - start > MAX_RANGE:
            raise ValidationError("The range may cover at most one year.", "to")


class CallListArgs(CallFilterArgs, PageArgs):
    pass


class CallExportArgs(CallFilterArgs):
    run_async = fields.Boolean(data_key="async", load_default=False, metadata={
        "description": "Generate the file in the background and answer 202 with its location."})


class CustomerRef(Schema):
    id = fields.Integer()
    name = fields.String()


class CallOut(Schema):
    id = fields.Integer()
    retell_call_id = fields.String(allow_none=True)
    direction = fields.String(validate=validate.OneOf(CALL_DIRECTIONS))
    status = fields.String(validate=validate.OneOf(CALL_STATUSES))
    from_number = fields.String(allow_none=True)
    to_number = fields.String(allow_none=True)
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    duration_seconds = fields.Integer()
    outcome = fields.String(allow_none=True, validate=validate.OneOf(CALL_OUTCOMES))
    sentiment = fields.String(allow_none=True, validate=validate.OneOf(SENTIMENTS))
    summary = fields.String(allow_none=True)
    customer_id = fields.Integer(allow_none=True)
    customer = fields.Nested(CustomerRef, allow_none=True)


class AppointmentRef(Schema):
    id = fields.Integer()
    title = fields.String()
    starts_at = fields.DateTime()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))


# Retell's call_analysis, kept whole: its usual members, and any others Retell adds
CALL_ANALYSIS = {
    "type": ["object", "null"],
    "description": "Retell's post-call analysis as Retell sent it (members it adds are kept).",
    "properties": {
        "call_summary": {"type": ["string", "null"]},
        "user_sentiment": {"type": ["string", "null"]},
        "call_successful": {"type": ["boolean", "null"]},
        "in_voicemail": {"type": ["boolean", "null"]},
        "custom_analysis_data": {"type": ["object", "null"], "additionalProperties": True,
                                 "description": "What the agent's configuration asks Retell to extract."},
    },
    "additionalProperties": True,
}


class CallDetailOut(CallOut):
    transcript = fields.String(allow_none=True)
    analysis = fields.Dict(allow_none=True, metadata=CALL_ANALYSIS)
    appointments = fields.List(fields.Nested(AppointmentRef),
                               metadata={"description": "Appointments booked during this call."})


class ExportOut(Schema):
    id = fields.Integer()
    status = fields.String(validate=validate.OneOf(["pending", "ready", "failed"]))
    created_at = fields.DateTime()
    size_bytes = fields.Integer(allow_none=True)
    download_url = fields.String()


CallPage = page_schema(CallOut, "CallPage")
CALL_PAGE = Serializer(CallPage)
# the list's rows, their customer made by with_customer, are its items as they are
check_rows_dump_as_is(CallOut, calls_queries.LIST_ROW, dropped=("customer_name",), built={
    "customer": {"id": CALLS.customer_id, "name": calls_queries.CUSTOMER_NAME}})
CALL_DETAIL = Serializer(CallDetailOut)


def resolved_filters(args):
    """The validated filters with the date range as UTC instants in the company's timezone."""
    filters = {name: args.get(name) for name in
               ("direction", "status", "sentiment", "outcome", "customer_id", "q")}
    # the timezone only when a bound needs it (the principal carries it)
    if args.get("from_") or args.get("to"):
        principal = current_principal()
        zone = company_zone(principal.company_id, principal.timezone)
    else:
        zone = UTC
    filters["started_from"] = resolve_bound(args.get("from_"), zone)
    filters["started_before"] = resolve_bound(args.get("to"), zone, end=True)
    return filters


@blp.route("")
@blp.arguments(CallListArgs(), location="query")
@blp.response(200, CallPage)
@gateway_policy(permission="calls:read", cache="calls")
def list_calls(args):
    """The call log, newest first, filtered; items omit the transcript."""
    company_id, filters = current_company_id(), resolved_filters(args)
    page = page_fetched_newest_first(
        lambda after, limit: calls_queries.list_page_rows(company_id, filters, after, limit),
        CALLS.started_at, CALLS.id, args, calls_queries.with_customer)
    return json_response(page, CALL_PAGE.exact_only)


@blp.route("/<int:call_id>")
@blp.response(200, CallDetailOut)
@gateway_policy(permission="calls:read", cache="calls")
def get_call(call_id):
    """One call with its transcript, analysis and the appointments it booked."""
    call = calls_queries.call_detail(current_company_id(), call_id)
    if call is None:
        abort(404, message=f"No call with id {call_id}.")
    return json_response(CALL_DETAIL.one(call), CALL_DETAIL.exact_only)


@blp.route("/export")
@blp.arguments(CallExportArgs, location="query")
@blp.doc(**text_body("text/csv", "CSV of the matching calls, newest first, streamed."))
@blp.alt_response(202, schema=ExportOut, description="Asynchronous export accepted.")
@gateway_policy(permission="calls:export", resource="call_exports")
def export_calls(args):
    """The matching calls as CSV (same filters as the list), or an asynchronous export."""
    company_id = current_company_id()
    filters = resolved_filters(args)
    if args["run_async"]:
        stored = call_exports.start_export(company_id, filters)
        body = ExportOut().dump(export_view(stored))
        return body, 202, {"Location": body["download_url"]}
    stamp = dt.datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(stream_with_context(csv_chunks(export_rows(company_id, filters))),
                    mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'})


@blp.route("/exports/<int:export_id>")
@blp.doc(operationId="getCallExport")
@blp.doc(**text_body("text/csv", "The finished CSV."))
@blp.alt_response(410, description="Generating the export failed, or its file is gone: request a new one.")
@blp.alt_response(202, schema=ExportOut, description="Still being generated.")
@gateway_policy(permission="calls:export")
def download_export(export_id):
    """An asynchronous export: the CSV when ready, 202 while pending."""
    stored = call_exports.find_export(current_company_id(), export_id)
    if stored is None:
        raise GatewayProblem(404, "Not Found", f"No export with id {export_id}.")
    status = call_exports.effective_status(stored)
    if status == "pending":
        return ExportOut().dump(export_view(stored)), 202
    if status == "failed":
        raise GatewayProblem(410, "Export Failed",
                             "Generating this export failed; request a new one.", export_id=stored.id)
    try:
        readable = call_exports.open_export(stored)
    except call_exports.ExportGone:
        raise GatewayProblem(410, "Export Gone", "This export's file no longer exists; "
                             "request a new one.", export_id=stored.id) from None
    return download_response(stored.path, f"calls-export-{stored.id}.csv", call_exports.CONTENT_TYPE,
                             readable, stored.size_bytes)


@blp.route("/<int:call_id>/recording")
@blp.response(200, description="The call's recording, as a download.", content_type="audio/wav")
@gateway_policy(permission="calls:read")
def call_recording(call_id):
    """The call's recording, once the worker has copied it from Retell (404 until then)."""
    call = get_owned_or_404(Call, call_id)
    if call.recording_path is None:
        raise GatewayProblem(404, "Not Found", f"Call {call_id} has no stored recording (yet).",
                             problem_type="recording-not-stored")
    try:
        readable = recordings.open_recording(call)
    except FileMissing:   # stored, then lost by the store
        raise GatewayProblem(410, "Recording Gone", f"Call {call_id}'s recording is no longer stored.",
                             call_id=call.id) from None
    extension = call.recording_path.rsplit(".", 1)[-1]
    return download_response(call.recording_path, f"call-{call.id}-recording.{extension}",
                             call.recording_content_type, readable, call.recording_size)


def export_view(stored):
    return {"id": stored.id, "status": call_exports.effective_status(stored),
            "created_at": stored.created_at, "size_bytes": stored.size_bytes,
            "download_url": url_for("calls.download_export", export_id=stored.id)}
