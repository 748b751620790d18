"""Stage 7, the request and response transforms (docs/transforms.md), through HTTP.

Each operation is checked on a local service (the calls service's test-only echo views,
tests/support/transforms_app.py) and on a remote one (analytics, proxied to a real
gunicorn serving tests/support/echo_upstream.py on loopback), with one declaration of
the same operations for both.
"""
import datetime
import json
from urllib.parse import parse_qsl

import pytest
import requests
import yaml
from werkzeug.datastructures import Headers
from werkzeug.http import generate_etag, quote_etag

from gateway_app.policy import DEFAULT_PATH, PolicyError, validate_policy
from tests.conftest import build_app, sign_up
from tests.support.echo_upstream import ARRAY_PATH, TEXT_PATH
from tests.support.servers import Gunicorn
from tests.support.transforms_app import (LOCAL_CACHED, LOCAL_ECHO, LOCAL_STREAMED, LOCAL_TEXT,
                                          register_transforms_test_routes)

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
REMOTE_ECHO = "/api/v1/analytics/echo"
ECHO = {"local": LOCAL_ECHO, "remote": REMOTE_ECHO}
TEXT = {"local": LOCAL_TEXT, "remote": TEXT_PATH}
SERVER = {"local": "local", "remote": "upstream"}
PREFIXES = {"local": ("/test/transforms", "/internal"), "remote": ("/api/v1/analytics", "/v2")}
BOTH = ["local", pytest.param("remote", marks=pytest.mark.gunicorn)]

OPERATIONS = {
    "request": {
        "headers": {"remove": ["X-Drop"], "rename": {"X-Old": "X-New"},
                    "replace": {"X-Replace": "replaced", "X-Absent": "never"},
                    "add": {"X-Add": "added", "X-Present": "not-this"}, "append": {"X-Multi": "two"}},
        "query": {"remove": ["drop"], "rename": {"old": "new"},
                  "replace": {"rep": "replaced", "absent": "never"},
                  "add": {"add": "added", "present": "not-this"}, "append": {"multi": "2"}},
        "json": {"remove": ["secret"], "rename": {"fullname": "name"},
                 "replace": {"tier": "basic", "absent": "never"},
                 "add": {"source": "gateway", "present": "not-this", "tags": ["a", 1]}},
    },
    "response": {
        "headers": {"remove": ["X-Echo-Server"], "rename": {"X-Upstream-Old": "X-Upstream-New"},
                    "replace": {"X-Absent": "never"}, "add": {"X-Transformed": "yes"},
                    "append": {"X-Trace": "gateway"}},
        # renamed, then not added again: rename runs before add, as in Kong
        "json": {"remove": ["kept"], "rename": {"served_by": "origin"}, "replace": {"method": "VERB"},
                 "add": {"transformed": True, "origin": "not-this"}},
    },
}


def with_path(mode):
    strip, add = PREFIXES[mode]
    spec = json.loads(json.dumps(OPERATIONS))
    spec["request"]["path"] = {"strip_prefix": strip, "add_prefix": add}
    return spec


def raw_policy():
    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def policy_with(transforms):
    raw = raw_policy()
    raw["transforms"] = transforms
    return validate_policy(raw)


@pytest.fixture(scope="module")
def upstream():
    server = Gunicorn({}, workers=1, app_uri="tests.support.echo_upstream:app").start()
    yield server
    server.stop()


@pytest.fixture
def make_app(tmp_path, redis_url, redis_client, built_apps):
    def make(transforms, remote_upstream=None, name="transforms"):
        app = build_app(f"sqlite:///{tmp_path}/{name}.db", redis_url,
                        GATEWAY_POLICY=policy_with(transforms))
        register_transforms_test_routes(app)
        built_apps(app)
        client = app.test_client()
        if remote_upstream is not None:
            requests.post(remote_upstream.url + "/__control/ok", timeout=5)
            response = client.post("/gateway/admin/registry/analytics/instances",
                                   json={"url": remote_upstream.url}, headers=ADMIN)
            assert response.status_code == 201, response.get_json()
        return app, sign_up(client)
    yield make


@pytest.fixture
def transformed(request, make_app):
    """(mode, tenant) with OPERATIONS declared for calls (local) and analytics (remote)."""
    mode = request.param
    remote = request.getfixturevalue("upstream") if mode == "remote" else None
    _app, tenant = make_app({"services": {"calls": with_path("local"), "analytics": with_path("remote")}},
                            remote_upstream=remote)
    return mode, tenant


def received(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_request_headers_are_removed_renamed_replaced_added_and_appended(transformed):
    mode, tenant = transformed
    sent = {"X-Drop": "gone", "X-Old": "moved", "X-Replace": "original", "X-Present": "kept",
            "X-Multi": "one"}
    headers = Headers(received(tenant.get(ECHO[mode], headers=sent))["headers"])
    assert "X-Drop" not in headers and "X-Old" not in headers and "X-Absent" not in headers
    assert headers["X-New"] == "moved"
    assert headers["X-Replace"] == "replaced"
    assert headers["X-Add"] == "added" and headers["X-Present"] == "kept"
    assert headers["X-Multi"] == "one, two"


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_query_parameters_are_removed_renamed_replaced_added_and_appended(transformed):
    mode, tenant = transformed
    echoed = received(tenant.get(ECHO[mode] + "?drop=1&old=v%20w&rep=a&present=p&multi=1&caf%C3%A9=%C3%A9"))
    assert sorted(parse_qsl(echoed["query"], keep_blank_values=True)) == [
        ("add", "added"), ("café", "é"), ("multi", "1"), ("multi", "2"), ("new", "v w"),
        ("present", "p"), ("rep", "replaced")]


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_a_path_prefix_is_stripped_then_another_added(transformed):
    mode, tenant = transformed
    strip, add = PREFIXES[mode]
    assert received(tenant.get(ECHO[mode]))["path"] == add + ECHO[mode][len(strip):]


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_request_json_fields_are_removed_renamed_replaced_and_added(transformed):
    mode, tenant = transformed
    sent = {"fullname": "Ada", "secret": "s3", "tier": "pro", "present": 1, "nested": {"secret": 2}}
    echoed = received(tenant.post(ECHO[mode], json=sent))
    assert json.loads(echoed["body"]) == {"name": "Ada", "tier": "basic", "present": 1,
                                          "nested": {"secret": 2},   # top-level fields only
                                          "source": "gateway", "tags": ["a", 1]}
    assert int(Headers(echoed["headers"])["Content-Length"]) == len(echoed["body"].encode())


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_request_bodies_that_are_not_json_objects_pass_as_sent(transformed):
    mode, tenant = transformed
    for body, content_type in (('{"secret": "s3"}', "text/plain"), ('{"secret": ', "application/json"),
                               ('[{"secret": "s3"}]', "application/json")):
        echoed = received(tenant.post(ECHO[mode], data=body, content_type=content_type))
        assert echoed["body"] == body, content_type


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_response_headers_and_json_fields_are_transformed(transformed):
    mode, tenant = transformed
    response = tenant.get(ECHO[mode])
    body = received(response)
    assert "X-Echo-Server" not in response.headers and "X-Upstream-Old" not in response.headers
    assert response.headers["X-Upstream-New"] == "old-value"
    assert "X-Absent" not in response.headers
    assert response.headers["X-Transformed"] == "yes"
    assert response.headers.getlist("X-Trace") == ["gateway"]
    assert "kept" not in body and "served_by" not in body
    assert body["origin"] == SERVER[mode] and body["method"] == "VERB" and body["transformed"] is True
    # the service's ETag described the body it made, not this one
    assert "ETag" not in response.headers
    assert int(response.headers["Content-Length"]) == len(response.data)


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_response_bodies_that_are_not_json_objects_are_left_alone(transformed):
    mode, tenant = transformed
    response = tenant.get(TEXT[mode])
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert json.loads(response.data)["served_by"] == SERVER[mode]   # the body as the service made it
    assert response.headers["ETag"] in ('"local-etag"', '"upstream-etag"')
    assert response.headers["X-Transformed"] == "yes"                # headers are still transformed
    if mode == "remote":
        array = tenant.get(ARRAY_PATH)
        assert array.status_code == 200 and array.get_json()[0]["served_by"] == "upstream"


@pytest.mark.parametrize("transformed", BOTH, indirect=True)
def test_a_client_cannot_pass_the_gateways_identity_headers(transformed):
    mode, tenant = transformed
    forged = {"X-Gateway-Company-Id": "999999", "X-Gateway-Role": "owner-of-all", "X-Old": "x"}
    headers = Headers(received(tenant.get(ECHO[mode], headers=forged))["headers"])
    if mode == "remote":
        assert headers["X-Gateway-Company-Id"] == str(tenant.company["id"])
        assert headers["X-Gateway-Role"] == "owner"
    else:   # a local view knows the caller from the gateway's context, never from a header
        assert headers["X-Gateway-Company-Id"] == "999999"


def test_a_json_body_over_the_transform_limit_is_refused(make_app):
    _app, tenant = make_app({"max_body_bytes": 64, "services": {"calls": OPERATIONS}})
    large = {"fullname": "x" * 100}
    response = tenant.post(LOCAL_ECHO, json=large)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert "64 bytes" in response.get_json()["detail"]
    # a body no transform reads is not held: the gateway's own limit applies to it
    text = tenant.post(LOCAL_ECHO, data="y" * 100, content_type="text/plain")
    assert received(text)["body"] == "y" * 100


def test_a_streamed_json_answer_is_transformed_only_when_it_ends_within_the_limit(make_app):
    _app, tenant = make_app({"max_body_bytes": 256, "services": {"calls": OPERATIONS}})
    short = tenant.get(LOCAL_STREAMED + "?pad=10")
    assert short.get_json() == {"origin": "local", "pad": "x" * 10, "transformed": True}
    assert int(short.headers["Content-Length"]) == len(short.data)
    long = tenant.get(LOCAL_STREAMED + "?pad=1000")   # streamed on as it was, whole
    assert long.get_json() == {"served_by": "local", "kept": "yes", "pad": "x" * 1000}
    assert long.headers["X-Transformed"] == "yes"


def test_a_route_declaration_replaces_its_services_for_that_direction(make_app):
    _app, tenant = make_app({"services": {"analytics": {
        "request": {"headers": {"add": {"X-From-Service": "yes"}}},
        "response": {"headers": {"add": {"X-Analytics-Edge": "service"}}},
        "routes": {"/api/v1/analytics/kpis": {
            "request": {"query": {"rename": {"since": "from"}}},
            "response": {"json": {"remove": ["sentiment"]}}}}}}})
    kpis = tenant.get("/api/v1/analytics/kpis?since=2030-05-01&to=2030-05-31&tz=UTC")
    body = received(kpis)
    assert body["from"] == "2030-05-01" and "sentiment" not in body
    assert "X-Analytics-Edge" not in kpis.headers
    reports = tenant.get("/api/v1/analytics/reports?from=2030-05-01&to=2030-05-31&tz=UTC")
    assert received(reports)["periods"] and reports.headers["X-Analytics-Edge"] == "service"


def test_the_cache_keys_the_clients_request_and_keeps_the_transformed_answer(make_app):
    _app, tenant = make_app({"services": {"calls": {
        "request": {"query": {"rename": {"old": "new"}}},
        "response": {"headers": {"append": {"X-Trace": "gateway"}}, "json": {"add": {"transformed": True}}}}}})
    first = tenant.get(LOCAL_CACHED + "?old=1")
    body = received(first)
    assert first.headers["X-Cache"] == "MISS" and body["query"] == "new=1" and body["transformed"] is True
    # the ETag the caching stage gives is the transformed body's
    assert first.headers["ETag"] == quote_etag(generate_etag(first.data))
    hit = tenant.get(LOCAL_CACHED + "?old=1")
    assert hit.headers["X-Cache"].startswith("HIT") and hit.data == first.data
    assert hit.headers.getlist("X-Trace") == ["gateway"]    # kept transformed, not transformed again
    assert tenant.get(LOCAL_CACHED + "?old=1", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    # another client request is another entry, though it transforms to the same
    other = tenant.get(LOCAL_CACHED + "?new=1")
    assert other.headers["X-Cache"] == "MISS" and received(other)["run"] == body["run"] + 1


@pytest.mark.gunicorn
def test_a_stale_copy_of_a_remote_answer_is_served_as_it_was_transformed(make_app, upstream):
    _app, tenant = make_app({"services": {"analytics": {
        "request": {"path": {"strip_prefix": "/api/v1/analytics", "add_prefix": "/v2"}},
        "response": {"headers": {"append": {"X-Trace": "gateway"}}, "json": {"add": {"transformed": True}}}}}},
        remote_upstream=upstream)
    path = "/api/v1/analytics/kpis?from=2030-05-01"
    fresh = tenant.get(path)
    assert received(fresh)["path"] == "/v2/kpis" and fresh.headers["X-Cache"] == "MISS"
    requests.post(upstream.url + "/__control/fail", timeout=5)
    try:
        stale = tenant.get(path, headers={"Cache-Control": "no-cache"})   # past the fresh copy
    finally:
        requests.post(upstream.url + "/__control/ok", timeout=5)
    assert stale.status_code == 200 and stale.headers["X-Cache"] == "STALE"
    assert stale.get_json() == fresh.get_json()
    assert stale.headers.getlist("X-Trace") == ["gateway"]


def test_no_transform_declared_leaves_requests_untouched(make_app):
    _app, tenant = make_app({"services": {"billing": OPERATIONS}})
    echoed = received(tenant.get(LOCAL_ECHO + "?old=1&drop=2", headers={"X-Old": "o"}))
    assert echoed["query"] == "old=1&drop=2" and Headers(echoed["headers"])["X-Old"] == "o"
    assert echoed["served_by"] == "local" and echoed["kept"] == "yes"


# --- validated at start ------------------------------------------------------------------

def invalid(transforms):
    with pytest.raises(PolicyError) as refused:
        policy_with(transforms)
    return str(refused.value)


@pytest.mark.parametrize("direction, operation, name", [
    ("request", "add", "X-Gateway-Company-Id"), ("request", "replace", "x-gateway-role"),
    ("response", "append", "X-Gateway-Signature"), ("request", "remove", "X-Request-ID"),
    ("request", "add", "X-Forwarded-For"), ("response", "add", "Set-Cookie"),
    ("request", "add", "Content-Length"), ("response", "remove", "RateLimit"),
    ("response", "add", "Access-Control-Allow-Origin")])
def test_a_transform_may_not_name_a_header_the_gateway_owns(direction, operation, name):
    value = [name] if operation == "remove" else {name: "forged"}
    message = invalid({"services": {"analytics": {direction: {"headers": {operation: value}}}}})
    assert f"transforms.services.analytics.value.{direction}.headers.{operation}.{name}: a transform may not name" in message


def test_a_rename_to_an_identity_header_is_refused():
    message = invalid({"services": {"calls": {"request": {"headers": {"rename": {"X-Role": "X-Gateway-Role"}}}}}})
    assert "transforms.services.calls.value.request.headers.rename.X-Gateway-Role" in message


@pytest.mark.parametrize("transforms, key", [
    ({"services": {"nosuch": {}}}, "transforms.services.nosuch"),
    ({"services": {"calls": {"request": {"headers": {"delete": ["X-A"]}}}}},
     "transforms.services.calls.value.request.headers.delete"),
    ({"services": {"calls": {"request": {"path": {"strip_prefix": "api/"}}}}},
     "transforms.services.calls.value.request.path.strip_prefix"),
    ({"services": {"calls": {"request": {"path": {"add_prefix": "/v2/"}}}}},
     "transforms.services.calls.value.request.path.add_prefix"),
    ({"services": {"calls": {"response": {"json": {"add": {"when": datetime.date(2030, 1, 1)}}}}}},
     "transforms.services.calls.value.response.json.add.when.value"),
    ({"services": {"calls": {"response": {"query": {"add": {"a": "b"}}}}}},
     "transforms.services.calls.value.response.query"),
    ({"services": {"calls": {"request": {"headers": {"add": {"X-A": "one\r\nX-B: two"}}}}}},
     "transforms.services.calls.value.request.headers.add.X-A"),
    ({"services": {"calls": {"request": {"json": {"append": {"a": "b"}}}}}},
     "transforms.services.calls.value.request.json.append"),
    ({"max_body_bytes": 0}, "transforms.max_body_bytes"),
])
def test_a_bad_transforms_section_stops_the_start_naming_the_key(transforms, key):
    assert key in invalid(transforms)


@pytest.mark.parametrize("rule, found", [
    ("/api/v1/analytics/nope", "no view has it"),
    ("/api/v1/calls", "its views belong to calls"),
])
def test_a_route_must_be_one_of_the_services_routes(tmp_path, redis_url, rule, found):
    policy = policy_with({"services": {"analytics": {"routes": {rule: {"response": {"headers": {
        "add": {"X-A": "b"}}}}}}}})
    with pytest.raises(PolicyError) as refused:
        build_app(f"sqlite:///{tmp_path}/routes.db", redis_url, GATEWAY_POLICY=policy)
    assert f"transforms.services.analytics.routes.{rule}: not a route of the analytics service ({found})" \
        in str(refused.value)


def documented_example():
    import os
    import re
    path = os.path.join(os.path.dirname(DEFAULT_PATH), "..", "docs", "transforms.md")
    with open(path, encoding="utf-8") as handle:
        block = re.search(r"```yaml\n(.*?)```", handle.read(), re.S).group(1)
    return yaml.safe_load(block)["transforms"]


def test_the_documented_example_is_valid_and_does_what_the_docs_say(make_app):
    _app, tenant = make_app(documented_example())
    response = tenant.get("/api/v1/analytics/kpis?since=2030-05-01&to=2030-05-31")
    body = received(response)
    assert (body["from"], body["timezone"]) == ("2030-05-01", "UTC") and "sentiment" not in body
    assert "X-Analytics-Edition" not in response.headers      # the route's response replaces the service's
    reports = tenant.get("/api/v1/analytics/reports?since=2030-05-01&to=2030-05-31")
    assert received(reports)["api_version"] == 2 and reports.headers["X-Analytics-Edition"] == "v2"


@pytest.mark.gunicorn
def test_the_documented_example_reaches_a_remote_instance_as_documented(make_app, upstream):
    _app, tenant = make_app(documented_example(), remote_upstream=upstream)
    echoed = received(tenant.get("/api/v1/analytics/kpis?since=2030-05-01"))
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("GET", "/v2/kpis", "from=2030-05-01&tz=UTC")
    assert Headers(echoed["headers"])["X-Tenant-Source"] == "gateway"


@pytest.mark.gunicorn
def test_gunicorn_refuses_to_start_with_a_transform_that_forges_the_identity(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.servers import ROOT
    raw = raw_policy()
    raw["transforms"] = {"services": {"calls": {"request": {"headers": {"add": {"X-Gateway-Role": "owner"}}}}}}
    bad = tmp_path / "gateway.yaml"
    bad.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, GATEWAY_CONFIG=str(bad), PORT="0", GATEWAY_BIND="127.0.0.1")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", "wsgi:app"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "transforms.services.calls.value.request.headers.add.X-Gateway-Role" in result.stderr
    assert "Traceback" not in result.stderr
