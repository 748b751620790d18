"""/openapi.json is a document a portal team can generate a client from (issue 21).

The document is derived from the pipeline's declarations (gateway_app/openapi.py); these
tests hold it to what the gateway really answers: real answers, successes and errors,
from the HTTP test client, each validated (JSON Schema 2020-12, as OpenAPI 3.1 says)
against the operation's documented response for its status and media type, with the
gateway's headers documented where they are sent.
"""
import datetime as dt
import re

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import PASSWORD, TEST_NOW, insert_appointment, insert_call

METHODS = ("get", "post", "patch", "put", "delete")
GATEWAY_HEADERS = ("RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID", "ETag", "X-Cache", "Age")
PROBLEM = "application/problem+json"


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def validator(document, schema):
    # "#/components/..." resolves against the root: the schema, carrying the components
    return Draft202012Validator({**schema, "components": document["components"]})


def schema_errors(document, schema, value):
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator(document, schema).iter_errors(value)]


def assert_documented(document, path, method, response):
    """``response`` is what the document says ``method path`` answers with its status."""
    operation = document["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (operation["operationId"], response.status_code, response.get_data()[:300])
    content = documented.get("content")
    if not content:
        assert response.get_data() == b"", (operation["operationId"], response.status_code)
    else:
        assert response.mimetype in content, (operation["operationId"], response.mimetype, list(content))
        schema = content[response.mimetype].get("schema")
        if schema is not None and response.is_json:
            errors = schema_errors(document, schema, response.get_json())
            assert errors == [], (operation["operationId"], response.status_code, errors, response.get_json())
    headers = documented.get("headers", {})
    for name in GATEWAY_HEADERS:
        if name in response.headers:
            assert name in headers, (operation["operationId"], response.status_code, name)
    for name, header in headers.items():
        header = document["components"]["headers"][header["$ref"].rsplit("/", 1)[1]] if "$ref" in header else header
        if header.get("required"):
            assert name in response.headers, (operation["operationId"], response.status_code, name)
    return response


# -- the document itself -----------------------------------------------------------------
def test_every_operation_is_named_secured_summarised_and_lists_its_errors(client):
    document = client.get("/openapi.json").get_json()
    assert document["servers"]
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z][A-Za-z]+", name) for name in ids), ids
    assert {"listCalls", "getCall", "createCustomer", "updateCustomer", "listAppointments",
            "createAppointment", "logIn"} <= set(ids)
    for path, method, operation in operations(document):
        name = operation["operationId"]
        assert operation.get("summary"), name
        assert "security" in operation, name
        responses = operation["responses"]
        assert "default" not in responses, name
        assert {"401", "503"} <= set(responses), name
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (name, status)
                assert "X-Request-ID" in response["headers"], (name, status)
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], (name, status)
    assert not any(path.startswith(("/gateway/console", "/docs/assets")) for path in document["paths"])


def test_what_each_operation_answers_comes_from_its_declarations(client):
    document = client.get("/openapi.json").get_json()
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    schema_of = lambda name, status: by_id[name]["responses"][status]["content"][PROBLEM]["schema"]["$ref"]  # noqa: E731
    # caching (stage 4): 304, the conditional request and the cache's headers
    assert "304" in by_id["listCalls"]["responses"]
    assert {"ETag", "X-Cache", "Age"} <= set(by_id["listCalls"]["responses"]["200"]["headers"])
    assert any(p["name"] == "If-None-Match" for p in by_id["listCalls"]["parameters"])
    assert "304" not in by_id["getCustomerTimeline"]["responses"]   # not cached
    # authorization (stage 2) and the views' own refusals
    assert schema_of("createCustomer", "403").endswith("/PermissionProblem")
    assert schema_of("createCustomer", "409").endswith("/ConflictProblem")
    assert schema_of("createAppointment", "409").endswith("/ConflictProblem")
    assert schema_of("listCalls", "422").endswith("/ValidationProblem")
    assert schema_of("listCalls", "429").endswith("/RateLimitProblem")
    assert schema_of("listCalls", "400").endswith("/BadRequestProblem")
    assert {"413", "415"} <= set(by_id["createCustomer"]["responses"])
    assert "413" not in by_id["listCalls"]["responses"]
    assert "404" in by_id["getCall"]["responses"] and "404" not in by_id["listCalls"]["responses"]
    # probes and webhooks are not rate limited, nor refuse unknown parameters
    assert "429" not in by_id["getHealth"]["responses"] and "400" not in by_id["getHealth"]["responses"]
    assert "RateLimit" not in by_id["receiveStripeWebhook"]["responses"]["200"]["headers"]
    assert "RateLimit" in by_id["listCalls"]["responses"]["200"]["headers"]
    # exports are CSV
    assert "text/csv" in by_id["exportCalls"]["responses"]["200"]["content"]
    # security as enforced
    assert {"apiKey": ["read"]} in by_id["listCalls"]["security"]
    assert not any("apiKey" in requirement for requirement in by_id["getProfile"]["security"])
    assert by_id["signUp"]["security"] == []
    assert by_id["listCalls"]["x-permission"] == "calls:read"


def test_response_schemas_are_exact_and_request_fields_never_default_to_null(client):
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    for name in ("CallOut", "CallDetailOut", "CustomerOut", "AppointmentOut", "CompanySettingsOut",
                 "PaymentOut", "TimelineItemOut", "ActivityItemOut", "ActivityCallData", "IntegrationsOut"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    assert schemas["CallOut"]["properties"]["direction"]["enum"] == ["inbound", "outbound"]
    assert None in schemas["CallOut"]["properties"]["outcome"]["enum"]
    assert schemas["PaymentOut"]["properties"]["invoice"]["type"] == ["string", "null"]
    assert set(schemas["CompanySettingsOut"]["properties"]["business_hours"]["properties"]) == {
        "mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                kinds = parameter["schema"].get("type")
                assert kinds != "null" and "null" not in (kinds or []), (path, parameter["name"])
                assert parameter["schema"].get("default", 0) is not None, (path, parameter["name"])
    for name in ("CustomerIn", "BookingIn", "CompanySettingsPatch"):
        for member, prop in schemas[name]["properties"].items():
            assert prop.get("default", 0) is not None, (name, member)


# -- real answers --------------------------------------------------------------------------
@pytest.fixture
def portal(tenant, client):
    company_id = tenant.company["id"]
    call = insert_call(company_id, TEST_NOW - dt.timedelta(hours=2), transcript="agent: hi",
                       analysis={"call_summary": "Booked", "user_sentiment": "Positive",
                                 "custom_analysis_data": {"service": "cut"}},
                       outcome="booked", sentiment="positive")
    insert_call(company_id, TEST_NOW - dt.timedelta(days=1), status="missed", duration_seconds=0)
    insert_appointment(company_id, TEST_NOW + dt.timedelta(days=1), call_id=call.id)
    reader = tenant.post("/api/v1/settings/api-keys", json={"name": "reader", "scopes": ["read"]})
    return {"tenant": tenant, "client": client, "call": call.id,
            "reader": {"X-API-Key": reader.get_json()["key"]},
            "document": client.get("/openapi.json").get_json()}


def test_successful_answers_match_the_document(portal):
    tenant, document = portal["tenant"], portal["document"]
    fresh = {"Cache-Control": "no-cache"}

    def check(path, method, response, status):
        assert response.status_code == status, (path, response.get_data()[:300])
        return assert_documented(document, path, method, response).get_json()

    created = check("/api/v1/customers", "post", tenant.post("/api/v1/customers", json={
        "name": "Jane Roe", "phone": "+14155550101", "email": "jane@example.com"}), 201)
    customer = f"/api/v1/customers/{created['id']}"
    check("/api/v1/customers/{customer_id}", "patch", tenant.patch(
        customer, json={"notes": None}, headers={"Content-Type": "application/merge-patch+json"}), 200)
    booking = check("/api/v1/appointments", "post", tenant.post("/api/v1/appointments", json={
        "customer_id": created["id"], "title": "Cut", "starts_at": "2029-10-03T10:00:00",
        "duration_minutes": 30}), 202)   # no Cal.com here: booked locally, confirmation pending
    check("/api/v1/appointments/{appointment_id}/status", "patch", tenant.patch(
        f"/api/v1/appointments/{booking['id']}/status", json={"status": "confirmed"}), 200)
    check("/api/v1/settings/company", "patch", tenant.patch("/api/v1/settings/company", json={
        "business_hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}}), 200)
    reads = [
        ("/api/v1/calls", "/api/v1/calls?limit=1"),
        ("/api/v1/calls/{call_id}", f"/api/v1/calls/{portal['call']}"),
        ("/api/v1/customers", "/api/v1/customers?q=jane"),
        ("/api/v1/customers/{customer_id}", customer),
        ("/api/v1/customers/{customer_id}/timeline", customer + "/timeline"),
        ("/api/v1/appointments", "/api/v1/appointments?from=2029-10-01&to=2029-10-07"),
        ("/api/v1/appointments/{appointment_id}", f"/api/v1/appointments/{booking['id']}"),
        ("/api/v1/dashboard/overview", "/api/v1/dashboard/overview"),
        ("/api/v1/dashboard/metrics", "/api/v1/dashboard/metrics"),
        ("/api/v1/dashboard/activity", "/api/v1/dashboard/activity"),
        ("/api/v1/analytics/kpis", "/api/v1/analytics/kpis"),
        ("/api/v1/settings/company", "/api/v1/settings/company"),
        ("/api/v1/settings/profile", "/api/v1/settings/profile"),
        ("/api/v1/settings/api-keys", "/api/v1/settings/api-keys"),
        ("/api/v1/billing/payments", "/api/v1/billing/payments"),
        ("/api/v1/team/members", "/api/v1/team/members"),
        ("/api/v1/team/permissions", "/api/v1/team/permissions"),
        ("/health", "/health"),
        ("/", "/"),
    ]
    for documented, url in reads:
        check(documented, "get", tenant.get(url, headers=fresh), 200)
    activity = tenant.get("/api/v1/dashboard/activity", headers=fresh).get_json()["data"]
    assert {item["type"] for item in activity} >= {"call", "booking", "customer"}
    timeline = tenant.get(customer + "/timeline", headers=fresh).get_json()["data"]
    assert [item["type"] for item in timeline] == ["appointment"]
    export = tenant.get("/api/v1/calls/export")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert_documented(document, "/api/v1/calls/export", "get", export)


def test_error_answers_match_the_document(portal, client):
    tenant, document, reader = portal["tenant"], portal["document"], portal["reader"]
    customers = "/api/v1/customers"

    def check(path, method, response, status):
        assert response.status_code == status, (path, status, response.get_data()[:300])
        return assert_documented(document, path, method, response).get_json()

    assert check(customers, "get", client.get(customers), 401)["request_id"]
    refused = check(customers, "post", client.post(customers, json={"name": "X"}, headers=reader), 403)
    assert refused["permission"] == "customers:write"
    check("/api/v1/customers/{customer_id}", "get", tenant.get(customers + "/99999999"), 404)
    tenant.post(customers, json={"name": "A", "phone": "+14155550111"})
    conflict = check(customers, "post", tenant.post(customers, json={"name": "B", "phone": "+14155550111"}), 409)
    assert conflict["field"] == "phone" and isinstance(conflict["existing_customer_id"], int)
    invalid = check(customers, "post", tenant.post(customers, json={"phone": "+14155550112"}), 422)
    assert invalid["errors"] == {"name": ["Missing data for required field."]}
    unknown = check(customers, "get", tenant.get(customers + "?colour=red"), 400)
    assert unknown["parameters"] == ["colour"]
    check(customers, "post", tenant.post(customers, data="name=A", content_type="text/plain"), 415)
    check(customers, "post", tenant.post(customers, data=b"{" * 40, content_type="application/json"), 400)
    huge = b'{"name": "' + b"a" * 3_000_000 + b'"}'
    check(customers, "post", tenant.post(customers, data=huge, content_type="application/json"), 413)
    first = tenant.get(customers)
    check(customers, "get", tenant.get(customers, headers={"If-None-Match": first.headers["ETag"]}), 304)
    wrong = {"email": tenant.user["email"], "password": "wrong-" + PASSWORD}
    answers = [client.post("/api/v1/auth/token", json=wrong, environ_base={"REMOTE_ADDR": "192.0.2.7"})
               for _ in range(6)]
    check("/api/v1/auth/token", "post", answers[0], 401)
    throttled = check("/api/v1/auth/token", "post", answers[-1], 429)
    assert throttled["layer"] == "login" and throttled["limit"] == 5
