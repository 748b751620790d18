"""The read paths' answers are what /openapi.json says they are.

The list and detail views build their answers from rows with a serializer made from
their response schemas (gateway_app/services/serialization.py), not with the schemas'
``dump``: each answer here, from real rows through the HTTP test client with an API key,
is checked against the operation's 200 response in the app's own OpenAPI document:
every property documented and present, no other, each value of its documented type.
"""
import datetime as dt

import pytest

from gateway_app.db import Session
from gateway_app.models import Customer, Invoice, Payment
from tests.conftest import TEST_NOW, insert_appointment, insert_call

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
FRESH = {"Cache-Control": "no-cache"}
JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def type_matches(name, value):
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, JSON_TYPES[name])


def problems(document, schema, value, where="$"):
    """What in ``value`` the (OpenAPI 3.1) ``schema`` does not describe, as messages."""
    schema = resolve(document, schema)
    if "anyOf" in schema:
        options = [problems(document, option, value, where) for option in schema["anyOf"]]
        return [] if any(not found for found in options) else [f"{where}: no anyOf matches {value!r}"]
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(type_matches(name, value) for name in types):
            return [f"{where}: {value!r} is not {types}"]
    found = []
    if isinstance(value, str) and schema.get("format") in ("date-time", "date"):
        parse = dt.datetime.fromisoformat if schema["format"] == "date-time" else dt.date.fromisoformat
        try:
            parsed = parse(value)
        except ValueError:
            return [f"{where}: {value!r} is not a {schema['format']}"]
        if schema["format"] == "date-time" and parsed.tzinfo is None:
            found.append(f"{where}: {value!r} has no offset")
        if schema["format"] == "date" and len(value) != 10:
            found.append(f"{where}: {value!r} is not a date")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if properties:
            # components list every property as required; an inline object (a call's
            # analysis, as Retell sent it) says which of its members may be absent
            missing = sorted(set(schema.get("required", ())) - set(value))
            if missing:
                found.append(f"{where}: documented but absent: {missing}")
        for key, item in value.items():
            if key in properties:
                found += problems(document, properties[key], item, f"{where}.{key}")
            elif extra is False:
                found.append(f"{where}: {key!r} is not documented")
            elif isinstance(extra, dict):
                found += problems(document, extra, item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(document, schema["items"], item, f"{where}[{index}]")
    return found


def response_schema(document, path):
    return document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.fixture
def portal(tenant):
    """A company with customers, calls, appointments, invoices and payments, read with
    an API key of the read scope (what a portal integration uses)."""
    company_id = tenant.company["id"]
    with_contacts = tenant.post("/api/v1/customers", json={
        "name": "Jane Roe", "phone": "+14155550101", "email": "jane@example.com", "notes": "VIP"})
    assert with_contacts.status_code == 201, with_contacts.get_json()
    jane = with_contacts.get_json()["id"]
    bare = Customer(company_id=company_id, name="No Contacts")
    Session.add(bare)
    Session.commit()
    booked = insert_call(company_id, TEST_NOW - dt.timedelta(hours=2), customer_id=jane,
                         transcript="agent: hello", analysis={"intent": "booking", "score": 0.5},
                         summary="Booked a cut", outcome="booked", sentiment="positive",
                         retell_call_id="call_abc", from_number="+14155550101",
                         to_number="+14155550199", ended_at=TEST_NOW - dt.timedelta(hours=2, minutes=-3))
    anonymous = insert_call(company_id, TEST_NOW - dt.timedelta(days=3), status="missed",
                            direction="outbound", duration_seconds=0)
    insert_appointment(company_id, TEST_NOW + dt.timedelta(days=1), customer_id=jane,
                       call_id=booked.id, notes="first visit")
    insert_appointment(company_id, TEST_NOW + dt.timedelta(days=2), status="pending")
    invoice = Invoice(company_id=company_id, stripe_invoice_id="in_1", number="A-1", status="paid",
                      amount_due=1000, amount_paid=1000, period_start=TEST_NOW - dt.timedelta(days=30),
                      period_end=TEST_NOW)
    Session.add(invoice)
    Session.flush()
    Session.add(Payment(company_id=company_id, stripe_payment_id="pi_1", invoice_id=invoice.id,
                        amount=1000, status="succeeded"))
    Session.commit()
    key = tenant.post("/api/v1/settings/api-keys", json={"name": "portal", "scopes": ["read"]})
    assert key.status_code == 201, key.get_json()
    return {"client": tenant.client, "headers": {**FRESH, "X-API-Key": key.get_json()["key"]},
            "call": booked.id, "anonymous_call": anonymous.id, "customer": jane,
            "bare_customer": bare.id}


@BOTH
def test_read_paths_answer_what_the_openapi_document_describes(portal):
    client, headers = portal["client"], portal["headers"]
    document = client.get("/openapi.json").get_json()
    day = TEST_NOW.date()
    samples = [
        ("/api/v1/calls", "/api/v1/calls", {}),
        ("/api/v1/calls", "/api/v1/calls", {"limit": 1}),
        ("/api/v1/calls", "/api/v1/calls", {"from": str(day - dt.timedelta(days=7)), "to": str(day)}),
        ("/api/v1/calls/{call_id}", f"/api/v1/calls/{portal['call']}", {}),
        ("/api/v1/calls/{call_id}", f"/api/v1/calls/{portal['anonymous_call']}", {}),
        ("/api/v1/customers", "/api/v1/customers", {}),
        ("/api/v1/customers", "/api/v1/customers", {"q": "jane", "limit": 1}),
        ("/api/v1/customers/{customer_id}", f"/api/v1/customers/{portal['customer']}", {}),
        ("/api/v1/customers/{customer_id}", f"/api/v1/customers/{portal['bare_customer']}", {}),
        ("/api/v1/appointments", "/api/v1/appointments",
         {"from": str(day), "to": str(day + dt.timedelta(days=7)), "limit": 1}),
        ("/api/v1/team/members", "/api/v1/team/members", {}),
        ("/api/v1/billing/invoices", "/api/v1/billing/invoices", {}),
        ("/api/v1/billing/payments", "/api/v1/billing/payments", {}),
        ("/api/v1/billing/usage", "/api/v1/billing/usage", {}),
        ("/api/v1/dashboard/overview", "/api/v1/dashboard/overview", {}),
        ("/api/v1/dashboard/metrics", "/api/v1/dashboard/metrics", {"period": "week"}),
        ("/api/v1/analytics/reports", "/api/v1/analytics/reports", {}),
        ("/api/v1/analytics/kpis", "/api/v1/analytics/kpis", {}),
        ("/api/v1/analytics/trends", "/api/v1/analytics/trends", {}),
    ]
    for documented, path, params in samples:
        response = client.get(path, query_string=params, headers=headers)
        assert response.status_code == 200, (path, response.get_json())
        assert response.content_type == "application/json"
        body = response.get_json()
        assert problems(document, response_schema(document, documented), body) == [], (path, body)


@BOTH
def test_the_samples_hold_what_the_schemas_make_optional(portal):
    """The check above saw nulls and values, nested objects and empty ones."""
    client, headers = portal["client"], portal["headers"]
    calls = client.get("/api/v1/calls", headers=headers).get_json()["data"]
    assert {item["customer"] is None for item in calls} == {True, False}
    detail = client.get(f"/api/v1/calls/{portal['call']}", headers=headers).get_json()
    assert detail["analysis"] == {"intent": "booking", "score": 0.5}
    assert len(detail["appointments"]) == 1
    overview = client.get("/api/v1/dashboard/overview", headers=headers).get_json()
    assert overview["upcoming_appointments"]["count"] == 2
    assert len(overview["upcoming_appointments"]["next"]) == 2
    page = client.get("/api/v1/calls", query_string={"limit": 1}, headers=headers).get_json()
    assert page["next_cursor"] is not None


def test_the_check_refuses_an_undocumented_absent_or_mistyped_value(client):
    document = client.get("/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/CustomerRef"}
    assert problems(document, schema, {"id": 1, "name": "Jane"}) == []
    assert problems(document, schema, {"id": 1, "name": "Jane", "email": "j@example.com"})
    assert problems(document, schema, {"id": 1})
    assert problems(document, schema, {"id": "1", "name": "Jane"})
    call = resolve(document, {"$ref": "#/components/schemas/CallOut"})["properties"]
    assert problems(document, call["started_at"], "2029-10-01T12:00:00")   # no offset
    assert problems(document, call["customer"], None) == []
