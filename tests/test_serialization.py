"""The read paths' serializer dumps what the schema's dump would, and json_response writes
the bytes jsonify would (gateway_app/services/serialization.py)."""
import datetime as dt

import pytest
from flask import Flask, jsonify
from marshmallow import Schema, fields

from blueprints.appointments import CalendarOut
from blueprints.billing import InvoicePage, PaymentPage, UsageOut
from blueprints.calls import CallDetailOut, CallPage
from blueprints.customers import CustomerPage, CustomerProfileOut
from blueprints.dashboard import MetricsOut, OverviewOut
from blueprints.team import MemberPage
from gateway_app.services.serialization import Serializer, json_response
from tests.conftest import TEST_NOW

UTC = dt.timezone.utc
CHICAGO = dt.timezone(dt.timedelta(hours=-6))


def call(**overrides):
    row = {"id": 7, "retell_call_id": "call_abc", "direction": "inbound", "status": "answered",
           "from_number": "+14155550101", "to_number": None, "started_at": TEST_NOW,
           "ended_at": None, "duration_seconds": 61, "outcome": "booked", "sentiment": None,
           "summary": "Booked a cut", "customer_id": 3, "customer": {"id": 3, "name": "Jane"}}
    row.update(overrides)
    return row


SAMPLES = [
    (CallPage, {"data": [call(), call(id=8, customer_id=None, customer=None, summary="Zoë ☎")],
                "next_cursor": "abc"}),
    (CallPage, {"data": [], "next_cursor": None}),
    (CallDetailOut, call(transcript="agent: hi", analysis={"score": 0.5, "tags": ["a"]},
                         appointments=[{"id": 1, "title": "Visit", "starts_at": TEST_NOW,
                                        "status": "confirmed"}])),
    (CustomerPage, {"data": [{"id": 1, "name": "Jane", "phone": None, "email": "j@example.com",
                              "notes": "line\nbreak\x7f", "created_at": TEST_NOW,
                              "updated_at": TEST_NOW}], "next_cursor": None}),
    (CustomerProfileOut, {"id": 1, "name": "Jane", "phone": "+1", "email": None, "notes": None,
                          "created_at": TEST_NOW, "updated_at": TEST_NOW, "calls_count": 2,
                          "last_call_at": None, "total_call_seconds": 0, "appointments_count": 0,
                          "next_appointment_at": TEST_NOW.astimezone(CHICAGO)}),
    (CalendarOut, {"data": [], "next_cursor": None, "from_": TEST_NOW.date(), "to": TEST_NOW.date(),
                   "timezone": "UTC"}),
    (MemberPage, {"data": [{"id": 1, "email": "o@example.com", "name": "Owner", "role": "owner",
                            "status": "active", "created_at": TEST_NOW, "last_login_at": None}],
                  "next_cursor": None}),
    (InvoicePage, {"data": [], "next_cursor": None, "source": "stripe"}),   # no note: no key
    (PaymentPage, {"data": [{"id": "pi_1", "amount": 100, "currency": "usd", "status": "ok",
                             "invoice": 4, "created_at": None}], "next_cursor": None,
                   "source": "local", "note": "n"}),
    (UsageOut, {"period_start": "2029-10-01", "period_end": "2029-11-01", "calls": 1, "minutes": 2,
                "plan_minutes": 3, "remaining_minutes": 1, "overage_minutes": 0,
                "percent_used": 66.7, "reported_minutes": 0}),
    (OverviewOut, {"timezone": "UTC", "today_start": TEST_NOW, "week_start": TEST_NOW,
                   "calls": {"today": {"total": 1, "answered": 1, "missed": 0},
                             "this_week": {"total": 1, "answered": 1, "missed": 0}},
                   "appointments_booked_from_calls": {"today": 0, "this_week": 0},
                   "upcoming_appointments": {"count": 0, "next": []}, "conversion_rate": 0.0}),
    (MetricsOut, {"period": "day", "timezone": "UTC", "current": {"from": TEST_NOW, "to": TEST_NOW},
                  "previous": {"from": TEST_NOW, "to": TEST_NOW},
                  "tiles": [{"key": "calls", "label": "Calls", "value": 3, "previous": 0,
                             "change": 3, "change_percent": None}]}),
]


@pytest.mark.parametrize("schema, data", SAMPLES, ids=[schema.__name__ for schema, _ in SAMPLES])
def test_the_serializer_dumps_what_the_schema_dumps(schema, data):
    assert Serializer(schema).one(data) == schema().dump(data)


@pytest.fixture
def flask_app():
    app = Flask(__name__)
    with app.app_context():
        yield app


@pytest.mark.parametrize("schema, data", SAMPLES, ids=[schema.__name__ for schema, _ in SAMPLES])
def test_answers_are_the_bytes_jsonify_writes(flask_app, schema, data):
    serializer = Serializer(schema)
    dumped = serializer.one(data)
    ours, flasks = json_response(dumped, serializer.exact_only), jsonify(schema().dump(data))
    assert ours.get_data() == flasks.get_data()
    assert ours.headers["Content-Type"] == flasks.headers["Content-Type"]
    assert ours.status_code == flasks.status_code


@pytest.mark.parametrize("value", ["plain", "Zoë", "tab\there", "del\x7f", "\u2028", 2 ** 70, -1, True,
                                   None, [1, "a"], {"b": 1, "a": {"d": None, "c": "x"}}])
def test_encoding_matches_jsonify_for_any_value(flask_app, value):
    assert json_response({"value": value}).get_data() == jsonify({"value": value}).get_data()


def test_a_field_the_serializer_does_not_know_is_dumped_by_the_field():
    class Odd(Schema):
        shout = fields.Function(lambda row: row["name"].upper())
        kept = fields.String(dump_default="default")
        when = fields.DateTime(format="%Y")

    serializer = Serializer(Odd)
    row = {"name": "jane", "when": TEST_NOW}
    assert serializer.one(row) == Odd().dump(row) == {"shout": "JANE", "kept": "default", "when": "2029"}
    assert serializer.exact_only
