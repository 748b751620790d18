"""How every endpoint reads a request, through HTTP: malformed JSON is 400 (never 500),
a body that is not JSON is 415 naming application/json, and an unknown query parameter
is 400 naming it; walked over every operation the OpenAPI document lists, so an endpoint
added later is covered without a change here."""
import re

import pytest

from tests.conftest import PASSWORD, sign_up

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
# documented exceptions (docs/contract.md section 8): probes, documentation, provider webhooks
ANY_QUERY_PREFIXES = ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/webhooks/")

MALFORMED = {
    "deep nesting (objects)": b'{"a":' * 3000 + b"1" + b"}" * 3000,
    "deep nesting (arrays)": b"[" * 100000 + b"]" * 100000,
    "nesting past the limit": b'{"name": ' + b"[" * 40 + b"]" * 40 + b"}",
    "integer of 5000 digits": b'{"name": 1' + b"0" * 5000 + b"}",
    "integer past 2**53": b'{"name": 18446744073709551616}',
    "number past double": b'{"name": 1e400}',
    "NaN": b'{"name": NaN}',
    "-Infinity": b'{"name": -Infinity}',
    "lone high surrogate": b'{"name": "\\ud800"}',
    "lone low surrogate in a key": b'{"\\udc00": "x"}',
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "overlong UTF-8": b'{"name": "\xc0\xaf"}',
    "truncated": b'{"name": ',
    "trailing garbage": b'{"name": "x"} x',
}


def concrete(path):
    return re.sub(r"\{[^}]+\}", "1", path)


def operations(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method.upper(), operation


def json_operations(client):
    return [(path, method) for path, method, operation in operations(client)
            if "application/json" in operation.get("requestBody", {}).get("content", {})]


def headers_for(path, owner):
    if path.startswith("/gateway/admin"):
        return ADMIN
    return owner.headers


@pytest.fixture
def owner(client):
    return sign_up(client, tier="unlimited")


def assert_problem(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status and body["request_id"]
    return body


def test_the_walk_covers_the_authentication_and_service_bodies(client):
    found = set(json_operations(client))
    assert {("/api/v1/auth/login", "POST"), ("/api/v1/auth/token", "POST"), ("/api/v1/auth/signup", "POST"),
            ("/api/v1/auth/refresh", "POST"), ("/api/v1/auth/logout", "POST"),
            ("/api/v1/auth/accept-invite", "POST"), ("/api/v1/customers", "POST"),
            ("/api/v1/customers/{customer_id}", "PATCH"), ("/api/v1/appointments", "POST"),
            ("/api/v1/team/members", "POST"), ("/api/v1/settings/company", "PATCH")} <= found


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_json_is_400_on_every_json_endpoint(client, owner, kind):
    for path, method in json_operations(client):
        response = client.open(concrete(path), method=method, data=MALFORMED[kind],
                               content_type="application/json", headers=headers_for(path, owner))
        body = assert_problem(response, 400)
        assert body["title"] == "Malformed JSON", (path, method, body)


@pytest.mark.parametrize("kind", ["integer past 2**53", "lone high surrogate", "invalid UTF-8"])
def test_the_reason_is_named(client, kind):
    response = client.post("/api/v1/auth/token", data=MALFORMED[kind], content_type="application/json")
    detail = assert_problem(response, 400)["detail"]
    assert {"integer past 2**53": "18446744073709551616", "lone high surrogate": "surrogate",
            "invalid UTF-8": "UTF-8"}[kind] in detail


def test_well_formed_edge_values_still_pass(client, owner):
    # the largest interoperable integer, a non-BMP character and moderate nesting are JSON
    created = owner.post("/api/v1/customers", json={"name": "Zoë 😀 \u4e2d"})
    assert created.status_code == 201 and created.get_json()["name"] == "Zoë 😀 \u4e2d"
    booking = owner.post("/api/v1/appointments", json={
        "customer_id": 2 ** 53 - 1, "starts_at": "2029-10-02T10:00:00Z", "duration_minutes": 30,
        "title": "x"})
    # a well-formed id of no customer: the schema's answer, not the parser's
    assert booking.status_code == 422 and "customer_id" in booking.get_json()["errors"]


def test_logged_in_flows_still_read_their_bodies(client, owner):
    login = client.post("/api/v1/auth/login", data=f'{{"email": "{owner.user["email"]}", '
                                                    f'"password": "{PASSWORD}"}}'.encode(),
                        content_type="application/json; charset=utf-8")
    assert login.status_code == 200, login.get_json()
    patched = owner.patch("/api/v1/settings/company", data=b'{"name": "Merged"}',
                          content_type="application/merge-patch+json")
    assert patched.status_code == 200, patched.get_json()


@pytest.mark.parametrize("content_type, data", [
    ("text/plain", b'{"email": "a@example.com", "password": "x"}'),
    ("application/x-www-form-urlencoded", b"email=a%40example.com&password=x"),
    ("multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\na\r\n--b--\r\n'),
    (None, b'{"email": "a@example.com", "password": "x"}'),
])
def test_a_body_that_is_not_json_is_415_on_every_json_endpoint(client, owner, content_type, data):
    for path, method in json_operations(client):
        response = client.open(concrete(path), method=method, data=data, content_type=content_type,
                               headers=headers_for(path, owner))
        body = assert_problem(response, 415)
        assert body["expected"] == "application/json"
        assert "application/json" in body["detail"]
        assert "errors" not in body   # not a list of "missing" fields
        accept = {"POST": "Accept-Post", "PATCH": "Accept-Patch"}.get(method)
        if accept:
            assert response.headers[accept] == "application/json"


def test_a_form_login_is_415_not_a_list_of_missing_fields(client, owner):
    response = client.post("/api/v1/auth/login", data={"email": owner.user["email"], "password": PASSWORD})
    body = assert_problem(response, 415)
    assert body["received"].startswith("application/x-www-form-urlencoded")
    # no body at all is still read as an empty document: the schema names what is missing
    empty = client.post("/api/v1/auth/login")
    assert assert_problem(empty, 422)["errors"].keys() == {"email", "password"}


def test_an_unknown_query_parameter_is_400_on_every_endpoint(client, owner):
    walked = 0
    for path, method, _operation in operations(client):
        if path.startswith(ANY_QUERY_PREFIXES):
            continue
        response = client.open(concrete(path) + "?limit=5&zz_unknown=1", method=method,
                               headers=headers_for(path, owner))
        body = assert_problem(response, 400)
        expected = ["zz_unknown"] if "limit" in body["accepted"] else ["limit", "zz_unknown"]
        assert body["parameters"] == expected, (path, method, body)
        assert "zz_unknown" in body["detail"]
        walked += 1
    assert walked >= 40


def test_the_accepted_parameters_are_named(owner):
    response = owner.get("/api/v1/calls", query_string={"form": "2029-01-01", "limit": 5})
    body = assert_problem(response, 400)
    assert body["parameters"] == ["form"] and "from" in body["accepted"]
    several = owner.get("/api/v1/customers", query_string={"b": 1, "a": 2})
    assert assert_problem(several, 400)["parameters"] == ["a", "b"]
    no_schema = owner.get("/api/v1/dashboard/overview", query_string={"tz": "UTC"})
    assert assert_problem(no_schema, 400)["accepted"] == []


def test_known_parameters_and_the_documented_exceptions_still_pass(client, owner):
    assert owner.get("/api/v1/calls", query_string={"limit": 5, "direction": "inbound"}).status_code == 200
    assert client.get("/health?probe=1").status_code == 200
    assert client.get("/openapi.json?v=2").status_code == 200
    assert client.get("/metrics?name[]=x").status_code == 200


def test_an_invalid_value_is_still_422_naming_the_field(owner):
    response = owner.get("/api/v1/calls", query_string={"limit": 0})
    assert "limit" in assert_problem(response, 422)["errors"]


def test_a_repeated_query_parameter_reads_its_first_value(owner):
    for name in ("Ann", "Bob", "Cy"):
        assert owner.post("/api/v1/customers", json={"name": name}).status_code == 201
    page = owner.get("/api/v1/customers?limit=1&limit=3")
    assert page.status_code == 200 and len(page.get_json()["data"]) == 1
    refused = owner.get("/api/v1/customers?limit=0&limit=3")
    assert "limit" in assert_problem(refused, 422)["errors"]


@pytest.mark.parametrize("query", ["", "?status=a&status=b&limit=2&limit=9", "?status=a", "?limit=3&q=x&q=y",
                                   "?status=&limit=4&", "?limit=%C3%A9"])
def test_the_query_reads_as_webargs_own_flask_parser_reads_it(app, query):
    """No query schema has a list yet: the parser's values are webargs' stock parser's,
    a list's values included."""
    from marshmallow import EXCLUDE, Schema, ValidationError, fields
    from webargs.flaskparser import FlaskParser

    from blueprints.parsing import GatewayBlueprint

    class Filters(Schema):
        status = fields.List(fields.String())
        q = fields.String()
        limit = fields.Integer()

    def parsed(parser):
        try:
            return parser.parse(Filters(), request, location="query", unknown=EXCLUDE)
        except ValidationError as error:
            return error.messages
        except Exception as error:   # the stock parser's abort
            return getattr(error, "data", {}).get("messages")
    with app.test_request_context("/x" + query):
        from flask import request
        assert parsed(GatewayBlueprint.ARGUMENTS_PARSER) == parsed(FlaskParser())


@pytest.mark.parametrize("kind", ["deep nesting (arrays)", "integer of 5000 digits", "lone high surrogate",
                                  "invalid UTF-8", "NaN"])
def test_signed_webhook_bodies_are_decoded_as_strictly(webhooks, kind):
    for send in (webhooks.retell, webhooks.calcom, webhooks.stripe):
        body = assert_problem(send(MALFORMED[kind]), 400)
        assert body["title"] == "Malformed JSON"


def test_webhooks_take_parameters_their_provider_adds(webhooks):
    from gateway_app.webhooks.signatures import calcom_digest
    body = b'{"triggerEvent":"PING","payload":{}}'
    response = webhooks.client.post("/webhooks/calcom?source=dashboard", data=body,
                                    headers={"Content-Type": "application/json",
                                             "X-Cal-Signature-256": calcom_digest("calsecret", body)})
    assert response.status_code == 200, response.get_json()


def test_every_blueprint_reads_requests_through_the_gateway_parser(app):
    from blueprints.parsing import GatewayBlueprint
    others = [name for name, blueprint in app.blueprints.items()
              if name != "api-docs" and not isinstance(blueprint, GatewayBlueprint)]
    assert others == []


@pytest.mark.parametrize("id_", ["9223372036854775808", "99999999999999999999", "9" * 5000])
def test_an_id_no_row_can_have_matches_no_route_and_is_422_elsewhere(client, owner, id_):
    walked = 0
    for path, method, _operation in operations(client):
        # the operator's routes take names, not ids (a breaker, an action, an asset), and
        # need their own credential first
        if "{" not in path or path.startswith(("/gateway/admin", "/gateway/console")):
            continue
        response = client.open(re.sub(r"\{[^}]+\}", id_, path), method=method, json={},
                               headers=owner.headers)
        # no route matches: 404, or 405 where a path of that shape takes other methods
        # (PATCH /customers/abc answers the same)
        assert response.status_code in (404, 405), (path, method, response.status_code)
        assert_problem(response, response.status_code)
        walked += 1
    assert walked >= 10
    for path in ("/api/v1/calls", "/api/v1/appointments"):
        response = owner.get(path, query_string={"customer_id": id_}, headers={"Cache-Control": "no-cache"})
        assert "customer_id" in assert_problem(response, 422)["errors"]
    admin = client.patch(f"/gateway/admin/companies/{id_}", json={"tier": "pro"}, headers=ADMIN)
    assert admin.status_code in (401, 404) and admin.headers["Content-Type"] == "application/problem+json"
