"""CORS for the portal's origins (GATEWAY_CORS_ORIGINS), through HTTP."""
import uuid

import pytest

from gateway_app.policy import load_policy
from gateway_app.settings import SettingsError, cors_origins, from_environment
from tests.conftest import build_app, sign_up

PORTAL = "https://portal.example.com"
OTHER_PORTAL = "http://localhost:5173"
STRANGER = "https://evil.example.net"
REQUIRED_ALLOWED = {"authorization", "x-api-key", "x-csrf-token", "idempotency-key", "content-type",
                    "if-none-match", "x-request-id"}
REQUIRED_EXPOSED = {"ratelimit", "ratelimit-policy", "retry-after", "x-request-id", "x-cache", "etag"}


def listed(header_value):
    return {part.strip().lower() for part in (header_value or "").split(",") if part.strip()}


def cors_headers(response):
    return {name: value for name, value in response.headers if name.lower().startswith("access-control-")}


def preflight(client, path, origin, method="GET", headers="authorization"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


@pytest.fixture
def make_app(database_url, redis_url, redis_client, built_apps):
    def make(origins, policy=None):
        return built_apps(build_app(database_url, redis_url, GATEWAY_CORS_ORIGINS=cors_origins(origins),
                                    GATEWAY_POLICY=policy))
    return make


@pytest.fixture
def portal_app(make_app):
    app = make_app(f"{PORTAL}, {OTHER_PORTAL}")
    with app.app_context():
        yield app


@pytest.fixture
def portal_client(portal_app):
    return portal_app.test_client()


def test_no_origins_configured_means_no_cors_headers(client, tenant):
    response = tenant.get("/api/v1/calls", headers={"Origin": PORTAL})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert "origin" not in listed(response.headers.get("Vary"))
    answer = preflight(client, "/api/v1/calls", PORTAL)
    assert cors_headers(answer) == {}


def test_listed_origin_preflight_is_answered_before_authentication_and_limits(portal_client):
    for path, method in [("/api/v1/calls", "GET"), ("/api/v1/customers/7", "PATCH"),
                         ("/gateway/admin/cache/purge", "POST")]:
        answer = preflight(portal_client, path, PORTAL, method, "authorization, content-type")
        assert answer.status_code == 204, (path, answer.get_data(as_text=True))
        assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        assert method.lower() in listed(answer.headers["Access-Control-Allow-Methods"])
        assert REQUIRED_ALLOWED <= listed(answer.headers["Access-Control-Allow-Headers"])
        assert int(answer.headers["Access-Control-Max-Age"]) > 0
        assert "origin" in listed(answer.headers["Vary"])
        # no rate-limit stage ran: no quota headers, nothing spent
        assert "RateLimit" not in answer.headers and "RateLimit-Policy" not in answer.headers
        assert answer.get_data() == b""


def test_the_second_listed_origin_is_echoed_not_the_first(portal_client):
    answer = preflight(portal_client, "/api/v1/calls", OTHER_PORTAL)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == OTHER_PORTAL


def test_unlisted_origin_gets_no_cors_headers(portal_client, portal_app):
    answer = preflight(portal_client, "/api/v1/calls", STRANGER)
    assert cors_headers(answer) == {}
    tenant = sign_up(portal_client)
    response = tenant.get("/api/v1/calls", headers={"Origin": STRANGER})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    # the answer still depends on the Origin header, so shared caches must key on it
    assert "origin" in listed(response.headers["Vary"])


def test_answers_to_a_listed_origin_are_readable(portal_client):
    tenant = sign_up(portal_client)
    response = tenant.get("/api/v1/calls", headers={"Origin": PORTAL})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert REQUIRED_EXPOSED <= listed(response.headers["Access-Control-Expose-Headers"])
    assert "origin" in listed(response.headers["Vary"])
    assert "Access-Control-Allow-Methods" not in response.headers   # preflight only


@pytest.mark.parametrize("path,headers,status", [
    ("/api/v1/calls", {}, 401),                                  # no credential
    ("/api/v1/calls", {"X-API-Key": "gwk_nope_nope"}, 401),      # a bad one
    ("/api/v1/no-such-thing", {}, 404),                          # Flask's own answer
])
def test_error_answers_to_a_listed_origin_carry_cors_headers(portal_client, path, headers, status):
    response = portal_client.get(path, headers={"Origin": PORTAL, **headers})
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "x-request-id" in listed(response.headers["Access-Control-Expose-Headers"])


def test_a_rate_limited_answer_is_readable_with_its_retry_after(make_app):
    policy = load_policy()
    policy["rate_limiting"]["layers"]["ip"] = {"limits": ["1000/hour", "2/minute"],
                                            "names": ["ip", "burst"]}
    app = make_app(PORTAL, policy)
    with app.app_context():
        client = app.test_client()
        address = {"REMOTE_ADDR": f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}
        tenant = sign_up(client)
        statuses = [client.get("/api/v1/calls", headers={"Origin": PORTAL, **tenant.headers},
                               environ_base=address) for _ in range(3)]
        refused = statuses[-1]
        assert refused.status_code == 429, [r.status_code for r in statuses]
        assert refused.mimetype == "application/problem+json"
        assert refused.headers["Access-Control-Allow-Origin"] == PORTAL
        exposed = listed(refused.headers["Access-Control-Expose-Headers"])
        assert {"retry-after", "ratelimit", "ratelimit-policy"} <= exposed
        assert "Retry-After" in refused.headers
        # a preflight from the same exhausted address is still answered: browsers send it first
        assert preflight(client, "/api/v1/calls", PORTAL).status_code == 204


def test_cached_answers_get_the_requesting_origins_headers(portal_client):
    tenant = sign_up(portal_client)
    first = tenant.get("/api/v1/calls", headers={"Origin": PORTAL})
    assert first.headers["X-Cache"] == "MISS"
    hit = tenant.get("/api/v1/calls", headers={"Origin": OTHER_PORTAL})
    assert hit.headers["X-Cache"].startswith("HIT")
    assert hit.headers.getlist("Access-Control-Allow-Origin") == [OTHER_PORTAL]
    no_origin = tenant.get("/api/v1/calls")
    assert no_origin.headers["X-Cache"].startswith("HIT")
    assert cors_headers(no_origin) == {}
    stranger = tenant.get("/api/v1/calls", headers={"Origin": STRANGER})
    assert stranger.headers["X-Cache"].startswith("HIT") and cors_headers(stranger) == {}
    assert "origin" in listed(stranger.headers["Vary"])
    # a conditional hit, too
    revalidated = tenant.get("/api/v1/calls", headers={"Origin": PORTAL, "If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["Access-Control-Allow-Origin"] == PORTAL


def test_any_origin_is_never_combined_with_credentials(make_app):
    app = make_app(f"*, {PORTAL}")
    with app.app_context():
        client = app.test_client()
        anyone = preflight(client, "/api/v1/calls", STRANGER)
        assert anyone.status_code == 204
        assert anyone.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in anyone.headers
        portal = client.get("/health", headers={"Origin": PORTAL})
        assert portal.headers["Access-Control-Allow-Origin"] == PORTAL
        assert portal.headers["Access-Control-Allow-Credentials"] == "true"
        other = client.get("/health", headers={"Origin": STRANGER})
        assert other.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in other.headers


def test_a_session_login_from_the_portal_is_readable(portal_client):
    tenant = sign_up(portal_client)
    answer = preflight(portal_client, "/api/v1/auth/login", PORTAL, "POST", "content-type")
    assert answer.status_code == 204
    login = portal_client.post("/api/v1/auth/login", json={"email": tenant.user["email"],
                                                           "password": "correct horse battery staple"},
                               headers={"Origin": PORTAL})
    assert login.status_code == 200
    assert login.headers["Access-Control-Allow-Origin"] == PORTAL
    assert login.headers["Access-Control-Allow-Credentials"] == "true"


def test_origins_are_read_as_browsers_send_them():
    config = from_environment({"GATEWAY_CORS_ORIGINS": " HTTPS://Portal.Example.com:443/ ,http://localhost:5173,"
                                                       "http://[::1]:8080, https://portal.example.com"})
    assert config["GATEWAY_CORS_ORIGINS"] == ("https://portal.example.com", "http://localhost:5173",
                                              "http://[::1]:8080")
    assert from_environment({})["GATEWAY_CORS_ORIGINS"] == ()
    assert from_environment({"GATEWAY_CORS_ORIGINS": " , "})["GATEWAY_CORS_ORIGINS"] == ()


@pytest.mark.parametrize("bad", ["portal.example.com", "https://portal.example.com/app", "ftp://x.example",
                                 "https://", "https://user@portal.example.com", "https://x.example:99999",
                                 "null"])
def test_a_malformed_origin_stops_the_start_naming_it(bad):
    with pytest.raises(SettingsError, match="GATEWAY_CORS_ORIGINS"):
        from_environment({"GATEWAY_CORS_ORIGINS": f"https://ok.example, {bad}"})


def test_a_remote_instances_own_cors_headers_never_reach_the_browser(portal_app, portal_client):
    from tests.test_discovery import SERVICE_PATH, Instance, register, stop_monitor
    instance = Instance("A")
    instance.answer_headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true",
                               "Access-Control-Expose-Headers": "X-Secret"}
    try:
        register(portal_client, instance.url)
        tenant = sign_up(portal_client)
        fetched = tenant.get(SERVICE_PATH, headers={"Origin": STRANGER, "Cache-Control": "no-cache"})
        cached = tenant.get(SERVICE_PATH, headers={"Origin": STRANGER})
        portal = tenant.get(SERVICE_PATH, headers={"Origin": PORTAL})
        assert (fetched.headers["X-Cache"], cached.headers["X-Cache"]) == ("BYPASS", "HIT-L2")
        for response in (fetched, cached):
            assert response.get_json()["instance"] == "A"
            assert cors_headers(response) == {}
        assert portal.headers.getlist("Access-Control-Allow-Origin") == [PORTAL]
        assert "x-secret" not in listed(portal.headers["Access-Control-Expose-Headers"])
    finally:
        stop_monitor(portal_app)
        instance.stop()


def test_a_body_refused_before_any_stage_work_is_readable(portal_client):
    tenant = sign_up(portal_client)
    refused = tenant.post("/api/v1/customers", data="x" * (1024 * 1024 + 1), content_type="application/json",
                          headers={"Origin": PORTAL})
    assert refused.status_code == 413 and refused.mimetype == "application/problem+json"
    assert refused.headers["Access-Control-Allow-Origin"] == PORTAL
    assert refused.headers["Access-Control-Allow-Credentials"] == "true"
