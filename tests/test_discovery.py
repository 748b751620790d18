"""Service discovery (stage 6): registry admin API, health checks, round robin, failover.

The instances are real HTTP servers on loopback; each answers /health and echoes any
other request (which instance it is, the path, the headers it received).
"""
import dataclasses
import json
import socket
import threading

import pytest
import requests
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway_app.discovery.registry import make_instance
from gateway_app.migrate import upgrade
from gateway_app.policy import DEFAULT_PATH, load_policy
from tests.conftest import api_key_headers, build_app, sign_up
from tests.support.servers import Gunicorn

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
SERVICE_PATH = "/api/v1/analytics/kpis"


class Instance:
    """A remote service instance: /health answers ``health_status``, anything else echoes."""

    def __init__(self, name):
        self.name = name
        self.health_status = 200
        self.answer_status = 200
        self.health_hits = 0
        self.answer_hits = 0
        self.answer_headers = {}
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @Request.application
    def wsgi(self, request):
        if request.path == "/health":
            self.health_hits += 1
            return Response("ok", status=self.health_status)
        self.answer_hits += 1
        body = {"instance": self.name, "method": request.method, "path": request.path,
                "query": request.query_string.decode(), "body": request.get_data(as_text=True),
                "headers": dict(request.headers)}
        return Response(json.dumps(body), status=self.answer_status, mimetype="application/json",
                        headers=self.answer_headers)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def stop_monitor(app):
    app.extensions["gateway"].pipeline.stage("service_discovery").monitor.stop()


@pytest.fixture(autouse=True)
def monitors_stop_with_the_test(request):
    """Registering starts the app's health monitor thread; end it with the test."""
    yield
    app = request.node.funcargs.get("app")
    if app is not None:
        stop_monitor(app)


@pytest.fixture
def instances():
    started = {}

    def start(name):
        started[name] = Instance(name)
        return started[name]
    yield start
    for instance in started.values():
        instance.stop()


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def register(client, url, service="analytics"):
    response = client.post(f"/gateway/admin/registry/{service}/instances", json={"url": url},
                           headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def served_by(tenant, count, path=SERVICE_PATH):
    names = []
    for _ in range(count):
        response = tenant.get(path, headers={"Cache-Control": "no-cache"})  # bypass the cache stage
        assert response.status_code == 200, response.get_json()
        names.append(response.get_json()["instance"])
    return names


def test_registration_makes_a_service_remote_and_listable(client, tenant, instances):
    a = instances("A")
    listed = client.get("/gateway/admin/registry/analytics/instances", headers=ADMIN).get_json()
    assert listed["mode"] == "local" and listed["instances"] == []

    entry = register(client, a.url)
    assert entry["url"] == a.url and entry["check"] == "http" and entry["source"] == "admin"
    again = client.post("/gateway/admin/registry/analytics/instances", json={"url": a.url}, headers=ADMIN)
    assert again.status_code == 200 and again.get_json()["id"] == entry["id"]

    listed = client.get("/gateway/admin/registry/analytics/instances", headers=ADMIN).get_json()
    assert listed["mode"] == "remote"
    assert [i["url"] for i in listed["instances"]] == [a.url]
    assert served_by(tenant, 1) == ["A"]

    deleted = client.delete(f"/gateway/admin/registry/analytics/instances/{entry['id']}", headers=ADMIN)
    assert deleted.status_code == 204
    assert client.get("/gateway/admin/registry/analytics/instances", headers=ADMIN).get_json()["mode"] == "local"
    missing = client.delete(f"/gateway/admin/registry/analytics/instances/{entry['id']}", headers=ADMIN)
    assert missing.status_code == 404


def test_bad_registrations_are_rejected(client):
    bad = client.post("/gateway/admin/registry/analytics/instances", json={"url": "ftp://x/y"}, headers=ADMIN)
    assert bad.status_code == 422 and "url" in bad.get_json()["errors"]
    missing = client.post("/gateway/admin/registry/analytics/instances", json={}, headers=ADMIN)
    assert missing.status_code == 422 and "url" in missing.get_json()["errors"]
    unknown = client.post("/gateway/admin/registry/nosuch/instances", json={"url": "h:1"}, headers=ADMIN)
    assert unknown.status_code == 404 and unknown.get_json()["service"] == "nosuch"


def test_admin_registry_needs_the_admin_token(client, tmp_path, redis_url):
    assert client.get("/gateway/admin/registry/analytics/instances").status_code == 401
    wrong = client.post("/gateway/admin/registry/analytics/instances", json={"url": "h:1"},
                        headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401

    disabled = build_app(f"sqlite:///{tmp_path}/disabled.db", redis_url, GATEWAY_ADMIN_TOKEN=None)
    response = disabled.test_client().get("/gateway/admin/registry/analytics/instances", headers=ADMIN)
    assert response.status_code == 404


def test_round_robin_skips_an_instance_that_fails_its_health_check(client, tenant, instances):
    a, b, c = instances("A"), instances("B"), instances("C")
    for instance in (a, b, c):
        register(client, instance.url)
    c.health_status = 503
    checked = client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN).get_json()
    health = {i["url"]: i["healthy"] for i in checked["instances"]}
    assert health == {a.url: True, b.url: True, c.url: False}

    names = served_by(tenant, 4)
    assert set(names) == {"A", "B"}
    assert names[0::2] == [names[0]] * 2 and names[1::2] == [names[1]] * 2 and names[0] != names[1]

    c.health_status = 200  # recovers at the next check
    client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN)
    assert set(served_by(tenant, 3)) == {"A", "B", "C"}


def test_tcp_check_for_host_port_instances(client, instances):
    a = instances("A")
    entry = register(client, a.url.removeprefix("http://"))
    assert entry["check"] == "tcp"
    down = register(client, closed_port_url().removeprefix("http://"))
    checked = client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN).get_json()
    health = {i["id"]: (i["healthy"], i["detail"]) for i in checked["instances"]}
    assert health[entry["id"]] == (True, "tcp connect ok")
    assert health[down["id"]][0] is False and "tcp connect failed" in health[down["id"]][1]


def test_a_connect_failure_goes_on_to_the_next_instance_for_idempotent_requests_only(
        client, tenant, instances):
    a = instances("A")
    register(client, a.url)
    dead = instances("dead")
    dead_entry = register(client, dead.url)     # healthy when registered, then gone
    dead.stop()
    gets = served_by(tenant, 4)
    assert gets == ["A"] * 4                    # its turns went on to A
    posts = [tenant.post("/api/v1/analytics/reports", json={}) for _ in range(2)]
    assert sorted(response.status_code for response in posts) == [200, 503]   # not sent again
    refused = next(response for response in posts if response.status_code == 503)
    assert refused.get_json()["service"] == "analytics" and refused.headers["Retry-After"]
    listed = client.get("/gateway/admin/registry/analytics/instances", headers=ADMIN).get_json()
    health = {i["id"]: i for i in listed["instances"]}
    # 3 consecutive failures (policy: passive.consecutive_failures) ejected it
    assert health[dead_entry["id"]]["healthy"] is False
    assert health[dead_entry["id"]]["detail"].startswith("passive")


def test_passive_ejection_waits_for_consecutive_failures(client, tenant, instances):
    a = instances("A")
    broken = instances("B")
    register(client, a.url)
    broken_entry = register(client, broken.url)
    broken.answer_status = 502

    def broken_health():
        listed = client.get("/gateway/admin/registry/analytics/instances", headers=ADMIN).get_json()
        return next(i for i in listed["instances"] if i["id"] == broken_entry["id"])["healthy"]

    def post():   # not cacheable, so a failure is not hidden by the last good copy
        return tenant.post("/api/v1/analytics/reports", json={}).status_code

    statuses = [post() for _ in range(2)]
    # a 5xx is not retried elsewhere: the client gets 503 (B's turn), A answered the other
    assert sorted(statuses) == [200, 503]
    assert broken_health() is True              # one failure: still in the rotation
    broken.answer_status = 200
    assert served_by(tenant, 2) and broken_health() is True   # a success ends the streak
    broken.answer_status = 502
    statuses = [post() for _ in range(6)]
    assert statuses.count(503) == 3
    assert broken_health() is False             # the third in a row ejected it
    # (4 failures in all: under the breaker's threshold of 5)
    assert served_by(tenant, 3) == ["A"] * 3
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'gateway_upstream_ejections_total{{instance="{broken_entry["id"]}",service="analytics"}} 1.0' in metrics


def test_all_instances_down_answers_503_naming_the_service(client, tenant, instances):
    register(client, closed_port_url())
    broken = instances("B")
    broken.answer_status = 500
    register(client, broken.url)
    response = tenant.get(SERVICE_PATH)
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["service"] == "analytics" and body["request_id"]
    assert int(response.headers["Retry-After"]) > 0
    # nothing healthy is left: the next request fails fast the same way
    assert tenant.get(SERVICE_PATH).status_code == 503


def test_request_and_identity_are_forwarded_credentials_are_not(client, tenant, instances):
    a = instances("A")
    register(client, a.url)
    response = tenant.client.post(
        "/api/v1/analytics/reports?period=week&x=1", data=b'{"n": 1}',
        headers={**tenant.headers, "Content-Type": "application/json", "X-Request-ID": "req-12345678",
                 "X-Gateway-Company-Id": "999", "Cookie": "session=abc",
                 "Connection": "keep-alive, X-Private", "X-Private": "hop", "X-Custom": "kept"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200, response.get_json()
    echoed = response.get_json()
    assert echoed["method"] == "POST" and echoed["path"] == "/api/v1/analytics/reports"
    assert echoed["query"] == "period=week&x=1" and echoed["body"] == '{"n": 1}'
    headers = {name.lower(): value for name, value in echoed["headers"].items()}
    assert headers["x-request-id"] == "req-12345678"
    assert headers["x-gateway-company-id"] == str(tenant.company["id"])
    assert headers["x-gateway-user-id"] == str(tenant.user["id"])
    assert headers["x-gateway-role"] == "owner"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-custom"] == "kept"
    for leaked in ("authorization", "cookie", "x-private"):
        assert leaked not in headers
    assert response.headers["X-Request-ID"] == "req-12345678"

    key = api_key_headers(tenant, scopes=("read", "write"))
    with_key = tenant.client.post("/api/v1/analytics/reports", data=b"{}", headers={
        **key, "Content-Type": "application/json"})
    assert with_key.status_code == 200, with_key.get_json()
    forwarded = {name.lower(): value for name, value in with_key.get_json()["headers"].items()}
    assert "x-api-key" not in forwarded and "x-gateway-api-key-id" in forwarded


def test_remote_services_keep_the_gateways_authentication(client, instances):
    a = instances("A")
    register(client, a.url)
    response = client.get(SERVICE_PATH)
    assert response.status_code == 401
    assert client.get(SERVICE_PATH, headers={"Authorization": "Bearer forged"}).status_code == 401


def test_a_remote_instances_own_rate_limit_headers_give_way_to_the_gateways(client, tenant, instances):
    a = instances("A")
    a.answer_headers = {"RateLimit": '"theirs";r=1;t=1', "RateLimit-Policy": '"theirs";q=2;w=1'}
    register(client, a.url)
    fetched = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"})
    cached = tenant.get(SERVICE_PATH)
    assert (fetched.headers["X-Cache"], cached.headers["X-Cache"]) == ("BYPASS", "HIT-L2")
    for response in (fetched, cached):
        assert response.status_code == 200 and response.get_json()["instance"] == "A"
        assert len(response.headers.getlist("RateLimit")) == 1
        assert len(response.headers.getlist("RateLimit-Policy")) == 1
        assert "theirs" not in response.headers["RateLimit"]
        assert '"user";q=500;w=3600' in response.headers["RateLimit-Policy"]


def test_local_services_are_not_proxied(client, tenant, instances):
    register(client, instances("A").url, service="analytics")
    # /health belongs to no business service and stays local
    assert client.get("/health").get_json() == {"status": "ok"}
    assert tenant.get("/api/v1/team/roles").headers.get("X-Gateway-Instance") is None


def test_instances_from_the_policy_file_and_the_registry_shared_by_workers(
        tmp_path, redis_url, redis_client, instances):
    """Two apps on one Redis are two workers: one registers, the other routes to it."""
    a, b = instances("A"), instances("B")
    first = build_app(f"sqlite:///{tmp_path}/shared.db", redis_url)
    policy = first.extensions["gateway"].policy
    policy["service_discovery"]["services"]["calls"]["instances"] = [a.url]
    second = build_app(f"sqlite:///{tmp_path}/shared.db", redis_url, GATEWAY_POLICY=policy)
    first_registry = first.extensions["gateway"].pipeline.stage("service_discovery").registry
    second_registry = second.extensions["gateway"].pipeline.stage("service_discovery").registry
    assert [i.url for i in second_registry.instances("calls")] == [a.url]
    assert [i.source for i in second_registry.instances("calls")] == ["config"]

    assert first.test_client().post("/gateway/admin/registry/customers/instances",
                                    json={"url": b.url}, headers=ADMIN).status_code == 201
    second_registry.views.clear()   # the other worker's copy of a local service, kept a second
    assert [i.url for i in second_registry.instances("customers")] == [b.url]
    # the shared counter continues the rotation across workers
    turns = [first_registry.next_turn("customers"), second_registry.next_turn("customers")]
    assert turns[1] == turns[0] + 1
    stop_monitor(first)
    stop_monitor(second)


def test_instance_addresses():
    assert make_instance("http://10.0.1.10:8080/", "config").url == "http://10.0.1.10:8080"
    assert make_instance("10.0.1.10:8080", "config").check == "tcp"
    assert make_instance("10.0.1.10:8080", "config").host_port == ("10.0.1.10", 8080)
    with pytest.raises(ValueError):
        make_instance("not an address", "admin")


def test_redis_outage_keeps_routing_with_the_last_known_instances(tmp_path, private_redis, instances):
    a = instances("A")
    app = build_app(f"sqlite:///{tmp_path}/outage.db", private_redis.url)
    client = app.test_client()
    with app.app_context():
        tenant = sign_up(client)
        register(client, a.url)
        assert served_by(tenant, 1) == ["A"]
        registry = app.extensions["gateway"].pipeline.stage("service_discovery").registry
        private_redis.stop()
        # this worker's copy is due to be read again
        registry.views["analytics"] = dataclasses.replace(registry.views["analytics"], fetched_at=0.0)
        assert served_by(tenant, 2) == ["A", "A"]
        refused = client.post("/gateway/admin/registry/analytics/instances", json={"url": "h:1"},
                              headers=ADMIN)
        assert refused.status_code == 503 and refused.get_json()["service"] == "registry"
    stop_monitor(app)
    app.extensions["gateway_engine"].dispose()


@pytest.mark.gunicorn
def test_four_workers_rotate_over_the_healthy_instances_and_one_checks_health(tmp_path, redis_url, redis_client, instances):
    a, b, c = instances("A"), instances("B"), instances("C")
    c.health_status = 503
    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)
    policy["service_discovery"]["health_check"].update(interval=1, timeout=0.5)
    policy["service_discovery"]["services"]["analytics"]["instances"] = [a.url, b.url, c.url]
    policy_path = tmp_path / "gateway.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url, "GATEWAY_CONFIG": str(policy_path),
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef",
                       "GATEWAY_ADMIN_TOKEN": "admin-token-for-tests"}, workers=4).start()
    http = requests.Session()
    http.headers["Connection"] = "close"   # an idle keep-alive connection would hold up the graceful stop
    try:
        http.post(server.url + "/api/v1/auth/signup", timeout=10, json={
            "company_name": "Remote Co", "name": "Owner", "email": "remote@example.com",
            "password": "correct horse battery staple"})
        token = http.post(server.url + "/api/v1/auth/token", timeout=10, json={
            "email": "remote@example.com", "password": "correct horse battery staple"}).json()["access_token"]
        for _ in range(100):   # the first health round runs one interval after start
            listed = http.get(server.url + "/gateway/admin/registry/analytics/instances",
                              headers=ADMIN, timeout=5).json()
            if {i["url"]: i["healthy"] for i in listed["instances"]}.get(c.url) is False:
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail(f"C was never marked unhealthy: {listed}")

        names = []
        for _ in range(16):   # a new connection each time, so the requests spread over the workers
            response = http.get(server.url + SERVICE_PATH, timeout=10, headers={
                "Authorization": f"Bearer {token}", "Cache-Control": "no-cache"})
            assert response.status_code == 200, response.text
            names.append(response.json()["instance"])
        # each worker alternates A, B from its own start: k requests of one worker are
        # k/2 each (give or take one), so 16 over 4 workers give A 8 +/- 4, never C
        assert set(names) == {"A", "B"}, names
        assert 4 <= names.count("A") <= 12, names

        a.health_hits = 0
        threading.Event().wait(3)
        # one lock per interval: about 3 checks in 3 s, where 4 unsynchronised workers make ~12
        assert 1 <= a.health_hits <= 4, a.health_hits
    finally:
        http.close()
        server.stop()


def test_without_redis_the_registry_and_rotation_are_in_process(tmp_path, instances):
    a, b = instances("A"), instances("B")
    policy = load_policy()
    policy["service_discovery"]["services"]["analytics"]["instances"] = [a.url, b.url]
    app = build_app(f"sqlite:///{tmp_path}/embedded.db", None, GATEWAY_POLICY=policy)
    client = app.test_client()
    try:
        with app.app_context():
            tenant = sign_up(client)
            assert served_by(tenant, 4) == ["A", "B", "A", "B"]
            overview = client.get("/gateway/admin/registry", headers=ADMIN).get_json()["data"]
            analytics = next(entry for entry in overview if entry["service"] == "analytics")
            assert analytics["mode"] == "remote" and {i["source"] for i in analytics["instances"]} == {"config"}
            assert next(entry for entry in overview if entry["service"] == "calls")["mode"] == "local"
            configured = analytics["instances"][0]["id"]
            refused = client.delete(f"/gateway/admin/registry/analytics/instances/{configured}", headers=ADMIN)
            assert refused.status_code == 409 and refused.get_json()["service"] == "analytics"
    finally:
        stop_monitor(app)
        app.extensions["gateway_engine"].dispose()


def test_a_failing_remote_service_opens_its_breaker_and_is_not_called(client, tenant, instances):
    a = instances("A")
    a.answer_status = 500          # healthy by its /health, broken on every request
    register(client, a.url)
    for _ in range(5):             # failure_threshold: 5 within failure_window
        client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN)
        response = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"})
        assert response.status_code == 503
        assert response.get_json()["service"] == "analytics"
    health_checks_when_opened = a.health_hits
    calls_before = requests_seen(a)
    client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN)
    refused = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"})
    assert refused.status_code == 503
    assert "circuit breaker is open" in refused.get_json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert requests_seen(a) == calls_before      # the open breaker kept the request away
    assert health_checks_when_opened < a.health_hits   # the instance itself was still reachable
    state = client.get("/gateway/admin/breakers", headers=ADMIN).get_json()
    assert {"service": "analytics", "state": "open"}.items() <= next(
        b for b in state["data"] if b["service"] == "analytics").items()


def requests_seen(instance):
    return instance.answer_hits


def test_all_instances_down_serves_the_last_good_copy_as_stale(client, tenant, instances):
    a = instances("A")
    register(client, a.url)
    fresh = tenant.get(SERVICE_PATH)
    assert fresh.status_code == 200 and fresh.headers["X-Cache"] == "MISS"
    a.stop()
    stale = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"})  # must reach the instances
    assert stale.status_code == 200
    assert stale.headers["X-Cache"] == "STALE"
    assert stale.get_json() == fresh.get_json()


SIGNING_SECRET = "calls-signing-secret-0123456789"


@pytest.fixture
def signing_app(tmp_path, redis_url, redis_client, instances):
    """The calls service remote, on one instance, with the identity signed."""
    policy = load_policy()
    policy["service_discovery"]["services"]["analytics"]["signing_secret"] = SIGNING_SECRET
    app = build_app(f"sqlite:///{tmp_path}/signing.db", redis_url, GATEWAY_POLICY=policy)
    yield app
    stop_monitor(app)
    app.extensions["gateway_engine"].dispose()


def test_the_identity_passed_to_an_instance_is_signed(signing_app, instances):
    from werkzeug.datastructures import Headers

    from gateway_app.discovery.signing import verify

    client = signing_app.test_client()
    tenant = sign_up(client)
    register(client, instances("A").url)
    response = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"})
    assert response.status_code == 200, response.get_json()
    received = Headers(response.get_json()["headers"])
    assert received["X-Gateway-Signature"].startswith("t=")
    assert verify(SIGNING_SECRET, received)                      # what an instance checks
    assert not verify("another-service-secret-0123", received)  # another service's secret
    for name, forged in (("X-Gateway-Company-Id", "999"), ("X-Gateway-Role", "owner-of-all"),
                         ("X-Request-ID", "replayed-request-0001")):
        tampered = received.copy()
        tampered[name] = forged
        assert not verify(SIGNING_SECRET, tampered), name
    signed_at = int(received["X-Gateway-Signature"].split(",")[0][2:])
    assert not verify(SIGNING_SECRET, received, now=lambda: signed_at + 301)   # too old
    # the check docs/service-discovery.md gives instances agrees
    documented = documented_check()
    assert documented(received, SIGNING_SECRET) and not documented(tampered, SIGNING_SECRET)


def documented_check():
    import os
    import textwrap

    from gateway_app.policy import DEFAULT_PATH as policy_path
    docs = os.path.join(os.path.dirname(os.path.dirname(policy_path)), "docs", "service-discovery.md")
    with open(docs, encoding="utf-8") as handle:
        text = handle.read()
    block = text.split("In Python, with the same secret:\n\n", 1)[1].split("\n\n", 2)
    code = textwrap.dedent("\n\n".join(block[:2]))
    namespace = {}
    exec(compile(code, docs, "exec"), namespace)   # noqa: S102 - the documentation's own example
    return namespace["from_the_gateway"]


def test_a_service_without_a_secret_passes_no_signature(client, tenant, instances):
    register(client, instances("A").url)
    received = tenant.get(SERVICE_PATH, headers={"Cache-Control": "no-cache"}).get_json()["headers"]
    assert "X-Gateway-Signature" not in received


def test_a_signing_secret_may_come_from_the_environment(monkeypatch):
    from gateway_app.policy import PolicyError, validate_policy

    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    raw["service_discovery"]["services"]["analytics"]["signing_secret"] = "${ANALYTICS_SIGNING_SECRET}"
    with pytest.raises(PolicyError, match="ANALYTICS_SIGNING_SECRET is not set"):
        validate_policy(raw)
    monkeypatch.setenv("ANALYTICS_SIGNING_SECRET", SIGNING_SECRET)
    assert validate_policy(raw)["service_discovery"]["services"]["analytics"]["signing_secret"] == SIGNING_SECRET


def test_a_new_instance_takes_traffic_only_once_its_check_passed(client, tenant, instances):
    a, b = instances("A"), instances("B")
    register(client, a.url)
    # the monitor that registration started checks every instance in its first round,
    # which may come after B is listed: let that round end, and no other, so that B's
    # one check is its registration's
    monitor = client.application.extensions["gateway"].pipeline.stage("service_discovery").monitor
    monitor.stop()
    monitor.thread.join(10)
    b.health_status = 503
    entry = client.post("/gateway/admin/registry/analytics/instances", json={"url": b.url},
                        headers=ADMIN).get_json()
    assert b.health_hits == 1                               # checked at once, as registered
    assert entry["healthy"] is False and "503" in entry["detail"]
    assert served_by(tenant, 4) == ["A"] * 4
    b.health_status = 200
    client.post("/gateway/admin/registry/analytics/health-check", headers=ADMIN)
    assert set(served_by(tenant, 4)) == {"A", "B"}


def test_a_deleted_instance_gets_no_more_traffic_from_any_worker(tmp_path, redis_url, redis_client, instances):
    """Two apps on one Redis are two workers: one deletes, the other's very next request
    already leaves the instance out (its copy is read again when the version moved)."""
    a, b = instances("A"), instances("B")
    first = build_app(f"sqlite:///{tmp_path}/deleted.db", redis_url)
    second = build_app(f"sqlite:///{tmp_path}/deleted.db", redis_url)
    try:
        admin = first.test_client()
        with first.app_context():
            tenant = sign_up(admin)
        register(admin, a.url)
        b_entry = register(admin, b.url)
        other = second.test_client()
        headers = {**tenant.headers, "Cache-Control": "no-cache"}
        with second.app_context():
            seen = {other.get(SERVICE_PATH, headers=headers).get_json()["instance"] for _ in range(4)}
        assert seen == {"A", "B"}
        assert admin.delete(f"/gateway/admin/registry/analytics/instances/{b_entry['id']}",
                            headers=ADMIN).status_code == 204
        hits = b.answer_hits
        with second.app_context():
            after = [other.get(SERVICE_PATH, headers=headers).get_json()["instance"] for _ in range(4)]
        assert after == ["A"] * 4 and b.answer_hits == hits
    finally:
        for app in (first, second):
            stop_monitor(app)
            app.extensions["gateway_engine"].dispose()


def test_a_breaker_opened_in_one_worker_refuses_in_another_at_once(tmp_path, redis_url, redis_client, instances):
    a = instances("A")
    first = build_app(f"sqlite:///{tmp_path}/opened.db", redis_url)
    second = build_app(f"sqlite:///{tmp_path}/opened.db", redis_url)
    try:
        admin = first.test_client()
        with first.app_context():
            tenant = sign_up(admin)
        register(admin, a.url)
        other = second.test_client()
        headers = {**tenant.headers, "Cache-Control": "no-cache"}
        with second.app_context():
            assert other.get(SERVICE_PATH, headers=headers).status_code == 200   # closed, as it copied it
        assert admin.post("/gateway/admin/breakers/analytics", json={"state": "open"},
                          headers=ADMIN).status_code == 200
        hits = a.answer_hits
        with second.app_context():
            refused = other.get(SERVICE_PATH, headers=headers)
        assert refused.status_code == 503 and "circuit breaker is open" in refused.get_json()["detail"]
        assert a.answer_hits == hits
    finally:
        for app in (first, second):
            stop_monitor(app)
            app.extensions["gateway_engine"].dispose()


def test_a_local_services_aged_copy_is_read_again_once_not_by_every_request_meanwhile(redis_client):
    """A worker's copy of a service ages out once a second; requests arriving while one of
    them reads it again keep the copy they have (one read, not a read per request)."""
    from gateway_app.discovery.registry import LIST_REFRESH_SECONDS, Registry

    now = [1000.0]
    config = {"services": {"billing": {"version": "v1", "instances": []}}}
    reads, seen_meanwhile = [], []

    class CountedRegistry(Registry):
        def read_view(self, service):
            reads.append(service)
            if len(reads) == 2:   # another request of the worker arrives during this read
                seen_meanwhile.append(self.view(service))
            return super().read_view(service)

    registry = CountedRegistry(config, redis_client, clock=lambda: now[0])
    first = registry.view("billing")
    assert reads == ["billing"] and registry.view("billing") is first
    now[0] += LIST_REFRESH_SECONDS + 0.5
    again = registry.view("billing")
    assert reads == ["billing", "billing"]   # the request meanwhile did not read
    assert seen_meanwhile == [first] and again is not first
    # a version read by a request that differs from the copy's is always read again
    registry.changed("billing")
    version = redis_client.get(registry.version_key("billing"))
    assert registry.view("billing", version).version == version
    assert len(reads) == 3
