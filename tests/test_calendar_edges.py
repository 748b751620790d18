"""Dates at the edge of the calendar and cursors that decode to the wrong thing are 422
(400 when not even JSON), never a 500 and never a page: walked over every list endpoint
and every date parameter and body field the OpenAPI document lists."""
import base64
import datetime as dt
import json

import pytest

from tests.conftest import TEST_NOW, insert_call, sign_up

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
from tests.test_webhooks_retell import retell_event

DATE_FORMATS = ("date", "date-time", "date-or-date-time")
FRESH = {"Cache-Control": "no-cache"}


def cursor_of(document):
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


AT = "2029-09-30T12:00:00+00:00"
BAD_CURSORS = {
    "not base64": "!!!***",
    "base64 of nothing JSON": cursor_of(b"\xff\xfe\x00"),
    "a list of three": cursor_of([AT, 1, 2]),
    "a string": cursor_of("abc"),
    "a number": cursor_of(5),
    "a huge integer": cursor_of(10 ** 30),
    "an object": cursor_of({"at": AT, "id": 1}),
    "null key": cursor_of([AT, None]),
    "boolean key": cursor_of([AT, True]),
    "float key": cursor_of([AT, 1.5]),
    "negative key": cursor_of([AT, -1]),
    "key past 64 bits": cursor_of([AT, 2 ** 64]),
    "key past 2**53": cursor_of([AT, 2 ** 53 + 1]),
    "feed key past 64 bits": cursor_of([AT, "call:" + "9" * 25]),
    "feed key without id": cursor_of([AT, "call:"]),
    "list key": cursor_of([AT, [1]]),
    "instant not a string": cursor_of([1700000000, 1]),
    "instant not ISO": cursor_of(["yesterday", 1]),
    "year 1 at +14:00": cursor_of(["0001-01-01T00:00:00+14:00", 1]),
    "year 9999 at -14:00": cursor_of(["9999-12-31T23:59:59-14:00", 1]),
    "offset past 24 hours": cursor_of(["2029-01-01T00:00:00+25:00", 1]),
    "NaN": cursor_of(b"NaN"),
    "deeply nested": cursor_of(b"[" * 5000 + b"]" * 5000),
    "far too long": "A" * 5000,
}
BAD_DATES = ["0000-01-01", "0001-01-01", "9999-12-31", "1899-12-31", "9999-12-31T23:59:59+14:00",
             "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00+14:00",
             "2029-01-01T00:00:00+25:00", "2029-01-01T00:00:00+24:00", "10000-01-01", "2029-02-30",
             "9999-12-31T23:59:59.999999", "1e400", ""]


@pytest.fixture
def owner(client):
    return sign_up(client, tier="unlimited")


def openapi(client):
    return client.get("/openapi.json").get_json()


def list_paths(document):
    return sorted(path.replace("{customer_id}", "{id}")
                  for path, item in document["paths"].items()
                  if any(p["name"] == "cursor" for p in item.get("get", {}).get("parameters", [])))


def concrete(path, ids):
    return path.replace("{id}", str(ids["customer"]))


def assert_refused(response, field):
    assert response.status_code in (400, 422), (response.status_code, response.get_data(as_text=True)[:300])
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["request_id"]
    if response.status_code == 422:
        assert field in body["errors"], body
    return body


def test_every_list_endpoint_is_walked(client):
    found = list_paths(openapi(client))
    assert {"/api/v1/calls", "/api/v1/customers", "/api/v1/appointments", "/api/v1/team/members",
            "/api/v1/settings/api-keys", "/api/v1/dashboard/activity", "/api/v1/customers/{id}/timeline",
            "/api/v1/billing/invoices", "/api/v1/billing/payments"} <= set(found)


@pytest.mark.parametrize("kind", list(BAD_CURSORS))
def test_a_cursor_that_is_not_one_of_ours_is_422_on_every_list(client, owner, kind):
    ids = {"customer": owner.post("/api/v1/customers", json={"name": "A"}).get_json()["id"]}
    for path in list_paths(openapi(client)):
        headers = {**FRESH, **ADMIN} if path.startswith("/gateway/admin/") else FRESH
        response = owner.get(concrete(path, ids), query_string={"cursor": BAD_CURSORS[kind]}, headers=headers)
        assert_refused(response, "cursor")


def test_a_feeds_cursor_is_refused_by_a_list_and_the_other_way_round(owner):
    feed_cursor = cursor_of([AT, "call:5"])
    row_cursor = cursor_of([AT, 5])
    assert_refused(owner.get("/api/v1/calls", query_string={"cursor": feed_cursor}, headers=FRESH), "cursor")
    assert_refused(owner.get("/api/v1/dashboard/activity", query_string={"cursor": row_cursor}, headers=FRESH),
                   "cursor")


def test_cursors_the_gateway_made_still_page(owner):
    company_id = owner.company["id"]
    for n in range(3):
        insert_call(company_id, TEST_NOW - dt.timedelta(hours=n))
    first = owner.get("/api/v1/calls", query_string={"limit": 2}, headers=FRESH).get_json()
    second = owner.get("/api/v1/calls", query_string={"limit": 2, "cursor": first["next_cursor"]},
                       headers=FRESH)
    assert second.status_code == 200 and len(second.get_json()["data"]) == 1
    feed = owner.get("/api/v1/dashboard/activity", query_string={"limit": 2}, headers=FRESH).get_json()
    more = owner.get("/api/v1/dashboard/activity", query_string={"limit": 2, "cursor": feed["next_cursor"]},
                     headers=FRESH)
    assert more.status_code == 200 and len(more.get_json()["data"]) == 1


def date_parameters(document):
    for path, item in document["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("format") in DATE_FORMATS:
                yield path, parameter["name"]


def test_every_date_query_parameter_is_walked(client):
    found = set(date_parameters(openapi(client)))
    assert {("/api/v1/calls", "from"), ("/api/v1/calls/export", "to"), ("/api/v1/appointments", "from"),
            ("/api/v1/analytics/reports", "to"), ("/api/v1/analytics/trends", "from"),
            ("/api/v1/analytics/kpis", "to")} <= found


@pytest.mark.parametrize("value", BAD_DATES)
def test_dates_at_the_edge_of_the_calendar_are_refused_as_query_parameters(client, owner, value):
    for path, name in date_parameters(openapi(client)):
        for query in ({name: value}, {"from": value, "to": value}):
            response = owner.get(path, query_string=query, headers=FRESH)
            assert_refused(response, name if len(query) == 1 else "from")
            response.close()


def date_body_fields(document):
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("post", "put", "patch"):
                continue
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not content:
                continue
            ref = content["schema"].get("$ref", "")
            properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            for name, spec in properties.items():
                if spec.get("format") in DATE_FORMATS:
                    yield path, method.upper(), name


@pytest.mark.parametrize("value", BAD_DATES)
def test_dates_at_the_edge_of_the_calendar_are_refused_in_bodies(client, owner, value):
    fields = list(date_body_fields(openapi(client)))
    assert ("/api/v1/appointments", "POST", "starts_at") in fields
    customer = owner.post("/api/v1/customers", json={"name": "A"}).get_json()["id"]
    for path, method, name in fields:
        body = {"customer_id": customer, "title": "x", "starts_at": "2029-10-02T10:00:00Z", name: value}
        if name == "starts_at":
            body["duration_minutes"] = 30
        response = owner.client.open(path, method=method, json=body, headers=owner.headers)
        assert_refused(response, name)


def test_dates_inside_the_calendar_still_work(owner):
    assert owner.get("/api/v1/analytics/reports", query_string={"from": "1900-01-01", "to": "1900-12-31"},
                     headers=FRESH).status_code == 200
    assert owner.get("/api/v1/appointments", query_string={"from": "9998-12-25", "to": "9998-12-31"},
                     headers=FRESH).status_code == 200
    assert owner.get("/api/v1/calls", query_string={"from": "9998-12-31T00:00:00+14:00"},
                     headers=FRESH).status_code == 200


@pytest.mark.parametrize("fields", [{"start_timestamp": 2 ** 53 - 1}, {"end_timestamp": 10 ** 15},
                                    {"start_timestamp": -62135596800000}])
def test_a_providers_timestamp_outside_the_calendar_is_422(webhooks, fields):
    response = webhooks.retell(retell_event("call_started", **fields))
    assert response.status_code == 422, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_calcom_time_at_the_end_of_the_calendar_is_422(webhooks):
    event = {"triggerEvent": "BOOKING_CREATED", "payload": {
        "uid": "bk_edge", "startTime": "9999-12-31T23:59:59-14:00", "endTime": "9999-12-31T23:59:59-14:00"}}
    response = webhooks.calcom(event)
    assert response.status_code == 422, response.get_json()
