"""Retell AI call events (call_started, call_ended, call_analyzed) -> Call and Customer rows.

Retell sends ``{event, call: {...}}``, signs ``x-retell-signature: v=<ms>,d=<hex>`` with the
account's API key, and carries times as epoch milliseconds. Retell has no event id, but
each event happens once per call, so (call_id, event) identifies a delivery.
"""
import datetime as dt

from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate
from sqlalchemy import select

from ..events import emit
from ..models import CALL_DIRECTIONS, CALL_OUTCOMES, SENTIMENTS, Call, Company
from ..services import recordings
from ..services.timeranges import epoch_within_calendar
from . import customers, signatures
from .common import IGNORED, now, required_setting, tolerance
from .dedupe import Ignored, process_once

PROVIDER = "retell"
CALL_EVENTS = ("call_started", "call_ended", "call_analyzed")
RECORDING_EVENTS = ("call_ended", "call_analyzed")   # the events that may carry recording_url

# Retell's disconnection_reason -> our call status, where the reason decides it
MISSED_REASONS = {"dial_busy", "dial_failed", "dial_no_answer", "user_declined",
                  "registered_call_timeout", "marked_as_spam"}


class CallAnalysisSchema(Schema):
    class Meta:
        unknown = INCLUDE  # kept whole in Call.analysis
    call_summary = fields.String(allow_none=True)
    user_sentiment = fields.String(allow_none=True)
    call_successful = fields.Boolean(allow_none=True)
    custom_analysis_data = fields.Dict(allow_none=True)


class RetellCallSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    call_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    agent_id = fields.String(allow_none=True)
    from_number = fields.String(allow_none=True)
    to_number = fields.String(allow_none=True)
    direction = fields.String(allow_none=True, validate=validate.OneOf(CALL_DIRECTIONS))
    call_status = fields.String(allow_none=True)
    start_timestamp = fields.Integer(allow_none=True, validate=epoch_within_calendar(per_second=1000))
    end_timestamp = fields.Integer(allow_none=True, validate=epoch_within_calendar(per_second=1000))
    transcript = fields.String(allow_none=True)
    disconnection_reason = fields.String(allow_none=True)
    call_analysis = fields.Nested(CallAnalysisSchema, allow_none=True)
    recording_url = fields.String(allow_none=True, validate=validate.Length(max=2000))


class RetellEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE
    event = fields.String(required=True)
    call = fields.Nested(RetellCallSchema, required=True)


def verify(body, headers):
    api_key = required_setting(PROVIDER, "RETELL_API_KEY")
    signatures.verify_retell(api_key, body, headers.get(signatures.RETELL_HEADER),
                             now(), tolerance(PROVIDER))


def handle(document):
    event = RetellEventSchema().load(document)
    kind, data = event["event"], event["call"]
    if kind not in CALL_EVENTS:
        return {"status": IGNORED}
    status = process_once(PROVIDER, f"{data['call_id']}:{kind}", kind,
                          lambda session, record: apply_call_event(session, record, data, kind))
    return {"status": status}


def apply_call_event(session, record, data, kind):
    call = session.scalar(select(Call).where(Call.retell_call_id == data["call_id"]))
    if call is None:
        call = create_call(session, data)
    else:
        update_call(call, data)
        if call.customer_id is None:
            link_customer(session, call)
        emit(session, "calls.updated", call.company_id, call_id=call.id)
    if kind in RECORDING_EVENTS:
        recordings.queue_copy(session, call, data.get("recording_url"))
    record.company_id = call.company_id


def create_call(session, data):
    """Whichever event of a call arrives first creates it (deliveries are unordered)."""
    company_id = company_for_agent(session, data.get("agent_id"))
    call = Call(company_id=company_id, retell_call_id=data["call_id"], direction="inbound",
                status="ongoing", started_at=dt.datetime.now(dt.timezone.utc))
    update_call(call, data)
    link_customer(session, call)
    session.add(call)
    session.flush()
    emit(session, "calls.created", company_id, call_id=call.id)
    return call


def company_for_agent(session, agent_id):
    company_id = session.scalar(select(Company.id).where(Company.retell_agent_id == agent_id)) \
        if agent_id else None
    if company_id is None:
        raise Ignored(f"no company links Retell agent {agent_id!r}")
    return company_id


def from_epoch_ms(value):
    return dt.datetime.fromtimestamp(value / 1000.0, tz=dt.timezone.utc)


def update_call(call, data):
    """Copy what this event carries; a field the event leaves out keeps its earlier value."""
    for field in ("from_number", "to_number"):
        if data.get(field):
            setattr(call, field, customers.e164(data[field]) or data[field][:20])
    if data.get("direction"):
        call.direction = data["direction"]
    if data.get("start_timestamp") is not None:
        call.started_at = from_epoch_ms(data["start_timestamp"])
    if data.get("end_timestamp") is not None:
        call.ended_at = from_epoch_ms(data["end_timestamp"])
        call.duration_seconds = max(0, round((call.ended_at - call.started_at).total_seconds()))
    if data.get("transcript") is not None:
        call.transcript = data["transcript"]
    if data.get("call_status"):
        status = call_status(data["call_status"], data.get("disconnection_reason"),
                             data.get("call_analysis") or {})
        # a late call_started must not reopen a call that has already ended
        if not (status == "ongoing" and call.ended_at is not None):
            call.status = status
    apply_analysis(call, data.get("call_analysis"), data.get("disconnection_reason"))


def call_status(retell_status, reason, analysis):
    if retell_status in ("registered", "ongoing"):
        return "ongoing"
    if retell_status == "not_connected" or reason in MISSED_REASONS:
        return "missed"
    if retell_status == "error" or (reason or "").startswith("error"):
        return "failed"
    if reason == "voicemail_reached" or analysis.get("in_voicemail"):
        return "voicemail"
    return "answered"


def apply_analysis(call, analysis, reason):
    if analysis:
        if analysis.get("call_summary") is not None:
            call.summary = analysis["call_summary"]
        sentiment = (analysis.get("user_sentiment") or "").lower()
        if sentiment in SENTIMENTS:
            call.sentiment = sentiment
        outcome = (analysis.get("custom_analysis_data") or {}).get("outcome")
        if outcome in CALL_OUTCOMES:
            call.outcome = outcome
    if reason == "call_transfer" and call.outcome is None:
        call.outcome = "transferred"
    if analysis or reason:
        # a new dict, so the JSON column sees the change
        merged = dict(call.analysis or {})
        merged.update(analysis or {})
        if reason:
            merged["disconnection_reason"] = reason
        call.analysis = merged


def link_customer(session, call):
    """The caller of an inbound call, the callee of an outbound one, by E.164 number."""
    number = call.from_number if call.direction == "inbound" else call.to_number
    number = customers.e164(number)
    if number:
        call.customer_id = customers.by_phone(session, call.company_id, number).id
