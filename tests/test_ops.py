"""Operations basics through HTTP: errors as problem+json, request ids, probes, metrics."""
import pytest

from tests.conftest import build_app


def assert_problem(response, status):
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_health_is_public_and_fast(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_checks_database_and_redis(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"]["database"] == "ok"
    assert response.get_json()["checks"]["redis"] == "ok"


def test_ready_names_redis_when_it_is_down(private_redis, tmp_path):
    app = build_app(f"sqlite:///{tmp_path}/r.db", private_redis.url)
    client = app.test_client()
    assert client.get("/ready").status_code == 200
    private_redis.stop()
    body = assert_problem(client.get("/ready"), 503)
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"] == "ok"


def test_ready_names_the_database_when_it_is_down(redis_url, tmp_path):
    app = build_app(f"sqlite:///{tmp_path}/missing-dir/../r.db", redis_url)
    app.extensions["gateway_engine"].dispose()
    from gateway_app.db import bind, make_engine
    bind(make_engine("mysql+pymysql://nobody@127.0.0.1:1/none"))
    body = assert_problem(app.test_client().get("/ready"), 503)
    assert body["failed"] == ["database"]


def test_unknown_route_is_problem_404(client):
    assert_problem(client.get("/api/v1/nothing-here"), 404)


def test_wrong_method_is_problem_405_with_allow(client):
    response = client.delete("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_malformed_json_is_400(client):
    response = client.post("/api/v1/auth/token", data="{not json",
                           content_type="application/json")
    body = assert_problem(response, 400)
    assert "JSON" in body["title"]


def test_schema_violation_is_422_naming_fields(client):
    response = client.post("/api/v1/auth/signup", json={"email": "not-an-email"})
    body = assert_problem(response, 422)
    assert {"email", "password", "company_name", "name"} <= set(body["errors"])


def test_oversized_body_is_413(client):
    response = client.post("/api/v1/auth/token", data="x" * (1024 * 1024 + 1),
                           content_type="application/json")
    assert_problem(response, 413)


def test_unhandled_error_is_500_without_traceback(app, client):
    @app.route("/boom-test")
    def boom():
        raise RuntimeError("secret internal detail")
    app.view_functions["boom"].gateway_policy = {"public": True}
    response = client.get("/boom-test")
    body = assert_problem(response, 500)
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert body["title"] == "Internal Server Error"


def test_request_id_is_kept_when_well_formed_and_replaced_otherwise(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-12345678"}).headers[
        "X-Request-ID"] == "abc-12345678"
    replaced = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(replaced.headers["X-Request-ID"]) == 32


def test_access_log_is_one_json_line_per_request(tmp_path, redis_url, caplog):
    import json
    import logging
    app = build_app(f"sqlite:///{tmp_path}/log.db", redis_url, ACCESS_LOG=True)
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        app.test_client().get("/health", headers={"X-Request-ID": "log-test-0001"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert lines[-1]["request_id"] == "log-test-0001"
    assert lines[-1]["status"] == 200
    assert "latency_ms" in lines[-1] and "company_id" in lines[-1]
    assert list(lines[-1]["stage_ms"]) == ["metrics", "transform", "cors", "authentication",
                                           "authorization", "rate_limiting", "caching",
                                           "circuit_breaker", "transforms", "service_discovery"]


def test_metrics_exposes_request_counts(client):
    client.get("/health")
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE gateway_requests_total counter" in text
    assert "gateway_request_duration_seconds_bucket" in text
    # one count per request under the same labels, whichever series is read
    labels = '{method="GET",service="gateway",status="200"} '
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if labels in line}
    assert values["gateway_requests_total"] == values["gateway_request_duration_seconds_count"] > 0


def test_openapi_document_and_docs(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    document = spec.get_json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/signup" in document["paths"]
    assert client.get("/docs").status_code == 200


def test_bad_credentials_are_401_not_anonymous(client):
    response = client.get("/api/v1/auth/signup", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code in (401, 405)
    assert_problem(client.post("/api/v1/auth/token", json={"email": "x@y.z", "password": "p"},
                               headers={"Authorization": "Basic abc"}), 401)


@pytest.mark.parametrize("security_header", ["X-Content-Type-Options", "X-Frame-Options"])
def test_security_headers(client, security_header):
    assert security_header in client.get("/health").headers


def test_openapi_names_the_credential_of_each_operation(client):
    document = client.get("/openapi.json").get_json()
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "bearerToken", "session",
                                                               "csrfToken", "adminToken"}
    paths = document["paths"]
    assert paths["/health"]["get"]["security"] == []
    assert paths["/api/v1/auth/signup"]["post"]["security"] == []
    assert {"apiKey": ["read"]} in paths["/api/v1/calls/{call_id}"]["get"]["security"]
    assert {"apiKey": ["write"]} in paths["/api/v1/customers"]["post"]["security"]
    # roles that hold customers:write; a session's write also sends X-CSRF-Token
    assert {"session": ["admin", "member", "owner"], "csrfToken": []} in paths["/api/v1/customers"]["post"]["security"]
    assert [sorted(r) for r in paths["/api/v1/auth/logout"]["post"]["security"]] == [
        ["bearerToken"], ["csrfToken", "session"]]   # logout refuses API keys
    assert paths["/gateway/admin/companies/{company_id}"]["patch"]["security"] == [{"adminToken": []}]
    undocumented = [(path, method) for path, operations in paths.items()
                    for method, operation in operations.items()
                    if method in ("get", "post", "patch", "delete") and "security" not in operation]
    assert undocumented == []


def test_responses_carry_security_headers_and_the_gateway_request_id(app, client):
    """The transform stage: configured security headers are added unless the view set its
    own, the gateway's X-Request-ID replaces one the view (or a remote instance) sent, and
    Retry-After survives only on 429 and 503."""
    from flask import Response

    from gateway_app.pipeline.declarations import gateway_policy

    def own_headers():
        return Response("{}", status=200, mimetype="application/json", headers={
            "X-Frame-Options": "SAMEORIGIN", "X-Request-ID": "upstream-0001", "Retry-After": "30"})

    def busy():
        return Response("{}", status=503, mimetype="application/json", headers={"Retry-After": "7"})

    app.add_url_rule("/test-transform/own", view_func=gateway_policy(public=True, exempt_limits=True)(own_headers))
    app.add_url_rule("/test-transform/busy", view_func=gateway_policy(public=True, exempt_limits=True)(busy))

    plain = client.get("/health")
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["X-Frame-Options"] == "DENY"
    assert plain.headers["Referrer-Policy"] == "no-referrer"

    own = client.get("/test-transform/own", headers={"X-Request-ID": "client-0001"})
    assert own.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert own.headers.getlist("X-Request-ID") == ["client-0001"]
    assert "Retry-After" not in own.headers
    assert own.headers["Referrer-Policy"] == "no-referrer"

    assert client.get("/test-transform/busy").headers["Retry-After"] == "7"


def test_a_stage_that_answers_or_refuses_is_named_in_the_log_and_the_metrics(
        tmp_path, redis_url, redis_client, caplog):
    """Refusing (401, 413, 429) and answering (an L1 hit) end the chain alike: the access
    log names the stage and times it, and gateway_short_circuits_total counts it."""
    import json
    import logging
    import uuid

    from gateway_app.policy import load_policy
    from tests.conftest import sign_up
    policy = load_policy()
    policy["rate_limiting"]["layers"]["ip"] = {"limits": ["1000/hour", "3/minute"], "names": ["ip", "burst"]}
    app = build_app(f"sqlite:///{tmp_path}/log.db", redis_url, ACCESS_LOG=True, GATEWAY_POLICY=policy)
    tenant = sign_up(app.test_client())
    address = {"REMOTE_ADDR": f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"}

    def sent(method, path, **kwargs):
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            response = tenant.client.open(path, method=method, environ_base=address, **kwargs)
        line = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"][-1]
        return response.status_code, line["short_circuited_by"], list(line["stage_ms"])[-1]

    def counted(stage, status):
        text = app.test_client().get("/metrics").get_data(as_text=True)
        prefix = f'gateway_short_circuits_total{{stage="{stage}",status="{status}"}}'
        found = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(found[0].split()[-1]) if found else 0.0

    before = {key: counted(*key) for key in [("authentication", "401"), ("transform", "413"),
                                             ("rate_limiting", "429"), ("caching", "200")]}
    assert sent("GET", "/api/v1/calls", headers={"X-API-Key": "gwk_nope"}) == (401, "authentication", "authentication")
    assert sent("POST", "/api/v1/customers", headers=tenant.headers, data="x" * (1024 * 1024 + 1),
                content_type="application/json") == (413, "transform", "transform")
    assert sent("GET", "/api/v1/calls", headers=tenant.headers)[:2] == (200, None)
    # the ip burst is 3 a minute: the 401 spent one of it (a refused credential does), the
    # 413 none (refused before any credential is looked at)
    assert sent("GET", "/api/v1/calls", headers=tenant.headers) == (200, "caching", "caching")
    assert sent("GET", "/api/v1/calls", headers=tenant.headers) == (429, "rate_limiting", "rate_limiting")
    for key, count in before.items():
        assert counted(*key) == count + 1, key


def test_a_request_is_counted_by_the_next_scrape(client):
    def count_of_health_200s():
        text = client.get("/metrics").get_data(as_text=True)
        line = next(line for line in text.splitlines() if line.startswith(
            'gateway_requests_total{method="GET",service="gateway",status="200"}'))
        return float(line.rsplit(" ", 1)[1])
    client.get("/health")
    before = count_of_health_200s()    # counts the /metrics requests too: same labels
    for _ in range(3):
        client.get("/health")
    assert count_of_health_200s() == before + 4


def series_value(client, name, **labels):
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    found = [line for line in text.splitlines() if line.startswith(f"{name}{{{wanted}}}")]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_metrics_count_the_response_the_client_gets(app, tenant):
    """A 304 the caching stage makes for a request that missed is counted as 304."""
    first = tenant.get("/api/v1/calls")
    assert first.status_code == 200 and first.headers["ETag"]
    before = series_value(app.test_client(), "gateway_requests_total",
                          method="GET", service="calls", status="304")
    revalidated = tenant.get("/api/v1/calls", headers={"Cache-Control": "no-cache",
                                                       "If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304 and revalidated.headers["X-Cache"] == "BYPASS"
    assert series_value(app.test_client(), "gateway_requests_total",
                        method="GET", service="calls", status="304") == before + 1


def test_methods_a_client_makes_up_add_no_series(app, client):
    for method in ("BREW", "PROPFIND", "X-Custom-1", "X-Custom-2"):
        client.open("/health", method=method)
    text = client.get("/metrics").get_data(as_text=True)
    assert "BREW" not in text and "PROPFIND" not in text and "X-Custom" not in text
    assert series_value(client, "gateway_requests_total",
                        method="OTHER", service="gateway", status="405") >= 4


def test_answers_for_a_caller_are_private(client, tenant):
    missed = tenant.get("/api/v1/calls")
    hit = tenant.get("/api/v1/calls")
    assert hit.headers["X-Cache"] == "HIT-L1"
    assert missed.headers["Cache-Control"] == hit.headers["Cache-Control"] == "private"
    assert tenant.get("/api/v1/no-such-route").headers["Cache-Control"] == "private"
    assert "Cache-Control" not in client.get("/health").headers   # nobody's answer


@pytest.mark.parametrize("given, made", [
    ("max-age=60", "private, max-age=60"),
    ("public, max-age=60", "private, max-age=60"),
    ("no-store", "no-store"),
    ("private, max-age=5", "private, max-age=5"),
])
def test_a_handlers_cache_control_is_made_private(given, made):
    from gateway_app.pipeline.transform import private
    assert private(given) == made
