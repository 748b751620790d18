"""The caching stage through HTTP: tiers, headers, ETag/304, what is never stored, isolation."""
import threading
import time

import pytest

from gateway_app.db import Session
from gateway_app.identity.passwords import hash_password
from gateway_app.models import User
from gateway_app.redis_urls import SINGLE, parse_redis_url
from tests.conftest import PASSWORD, Tenant, build_app
from tests.support.cache_app import STATIC_BODY, register_cache_test_routes
from tests.support.redis_monitor import redis_commands


def make_app(database_url, redis_url, **overrides):
    app = build_app(database_url, redis_url, **overrides)
    return register_cache_test_routes(app)


@pytest.fixture
def app(database_url, redis_url, redis_client):
    app = make_app(database_url, redis_url)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def second_user(tenant, role="member"):
    """Another user of the tenant's company, with their own bearer token."""
    email = f"second-{tenant.user['id']}@example.com"
    Session.add(User(company_id=tenant.company["id"], email=email, name="Second", role=role,
                     password_hash=hash_password(PASSWORD)))
    Session.commit()
    token = tenant.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.get_json()
    user = Session.query(User).filter_by(email=email).one()
    return Tenant(tenant.client, tenant.company, {"id": user.id, "email": email},
                  token.get_json()["access_token"])


def emit(tenant, event, **body):
    response = tenant.post("/test/cache/events", json={"event": event, **body})
    assert response.status_code == 200, response.get_json()
    return response


def test_miss_then_l1_hit_with_age_and_same_etag(tenant):
    first = tenant.get("/test/cache/calls")
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert "Age" not in first.headers
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    second = tenant.get("/test/cache/calls")
    assert second.headers["X-Cache"] == "HIT-L1"
    assert int(second.headers["Age"]) >= 0
    assert second.headers["ETag"] == etag
    assert second.get_json() == first.get_json()   # the handler did not run again
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert second.headers["Content-Type"] == "application/json"


def test_l2_namespace_hits_l2_and_l1_namespace_falls_back_to_l2(app, tenant):
    assert tenant.get("/test/cache/analytics").headers["X-Cache"] == "MISS"
    assert tenant.get("/test/cache/analytics").headers["X-Cache"] == "HIT-L2"
    first = tenant.get("/test/cache/dashboard")
    # another worker: empty L1, same L2
    app.extensions["gateway"].pipeline.stage("caching").tiers.l1.clear()
    from_l2 = tenant.get("/test/cache/dashboard")
    assert from_l2.headers["X-Cache"] == "HIT-L2"
    assert from_l2.get_json() == first.get_json()
    assert tenant.get("/test/cache/dashboard").headers["X-Cache"] == "HIT-L1"


def test_query_string_order_does_not_matter_but_values_do(tenant):
    first = tenant.get("/test/cache/calls?status=ended&limit=10")
    assert first.headers["X-Cache"] == "MISS"
    reordered = tenant.get("/test/cache/calls?limit=10&status=ended")
    assert reordered.headers["X-Cache"] == "HIT-L1"
    assert reordered.get_json() == first.get_json()
    assert tenant.get("/test/cache/calls?limit=20&status=ended").headers["X-Cache"] == "MISS"


def test_head_is_answered_from_the_get_entry(tenant):
    tenant.get("/test/cache/calls")
    head = tenant.client.head("/test/cache/calls", headers=tenant.headers)
    assert head.status_code == 200
    assert head.headers["X-Cache"] == "HIT-L1"
    assert head.data == b""


def test_if_none_match_answers_304_on_hit_and_on_a_miss_with_the_same_body(tenant):
    first = tenant.get("/test/cache/calls-static")
    assert first.get_json() == STATIC_BODY
    etag = first.headers["ETag"]
    hit = tenant.get("/test/cache/calls-static", headers={"If-None-Match": etag})
    assert hit.status_code == 304
    assert hit.headers["X-Cache"] == "HIT-L1" and hit.headers["ETag"] == etag
    assert "Age" in hit.headers and hit.data == b""
    emit(tenant, "calls.created")
    miss = tenant.get("/test/cache/calls-static", headers={"If-None-Match": f'"other", {etag}'})
    assert miss.status_code == 304 and miss.headers["X-Cache"] == "MISS"
    changed = tenant.get("/test/cache/calls-static", headers={"If-None-Match": '"not-it"'})
    assert changed.status_code == 200 and changed.get_json() == STATIC_BODY
    assert changed.headers["X-Cache"] == "HIT-L1"


def test_client_no_cache_bypasses_and_refreshes(tenant):
    first = tenant.get("/test/cache/calls").get_json()
    fresh = tenant.get("/test/cache/calls", headers={"Cache-Control": "no-cache"})
    assert fresh.headers["X-Cache"] == "BYPASS"
    assert fresh.get_json()["run"] > first["run"]
    after = tenant.get("/test/cache/calls")
    assert after.headers["X-Cache"] == "HIT-L1"
    assert after.get_json() == fresh.get_json()   # the refreshed answer was stored
    pragma = tenant.get("/test/cache/calls", headers={"Pragma": "no-cache"})
    assert pragma.headers["X-Cache"] == "BYPASS"


@pytest.mark.parametrize("path", ["/test/cache/calls-cookie", "/test/cache/calls-private",
                                  "/test/cache/calls-large"])
def test_cookies_private_and_oversized_responses_are_never_stored(tenant, path):
    first = tenant.get(path)
    second = tenant.get(path)
    assert first.status_code == second.status_code == 200
    assert second.headers["X-Cache"] == "MISS"
    assert first.get_data() != second.get_data() or path.endswith("large")


def test_errors_are_never_stored(app, tenant):
    first = tenant.get("/test/cache/calls-missing")
    second = tenant.get("/test/cache/calls-missing")
    assert first.status_code == second.status_code == 404
    assert second.headers["X-Cache"] == "MISS"
    assert second.headers["Content-Type"] == "application/problem+json"
    assert "ETag" not in second.headers


def test_writes_and_unauthenticated_requests_are_not_cached(client, tenant):
    post = tenant.post("/test/cache/events", json={"event": "nothing.happened"})
    assert "X-Cache" not in post.headers
    anonymous = client.get("/test/cache/calls")
    assert anonymous.status_code == 401 and "X-Cache" not in anonymous.headers


def test_companies_never_see_each_others_entries(tenant_factory):
    first, second = tenant_factory(), tenant_factory()
    a = first.get("/test/cache/customers")
    b = second.get("/test/cache/customers")
    assert a.headers["X-Cache"] == b.headers["X-Cache"] == "MISS"
    assert a.get_json()["company"] == first.company["id"]
    assert b.get_json()["company"] == second.company["id"]
    assert second.get("/test/cache/customers").get_json()["company"] == second.company["id"]


def test_per_user_entries_are_per_user_and_shared_ones_per_company(tenant):
    colleague = second_user(tenant)
    mine = tenant.get("/test/cache/dashboard/mine")
    theirs = colleague.get("/test/cache/dashboard/mine")
    assert mine.headers["X-Cache"] == theirs.headers["X-Cache"] == "MISS"
    assert mine.get_json()["user"] == tenant.user["id"]
    assert theirs.get_json()["user"] == colleague.user["id"]
    assert colleague.get("/test/cache/dashboard/mine").get_json()["user"] == colleague.user["id"]
    shared = tenant.get("/test/cache/dashboard")
    from_colleague = colleague.get("/test/cache/dashboard")
    assert from_colleague.headers["X-Cache"] == "HIT-L1"
    assert from_colleague.get_json() == shared.get_json()


def test_lookups_are_counted_by_namespace_tier_and_outcome(client, tenant):
    tenant.get("/test/cache/calls")
    tenant.get("/test/cache/calls")
    tenant.get("/test/cache/analytics")
    tenant.get("/test/cache/analytics")
    tenant.get("/test/cache/calls", headers={"Cache-Control": "no-cache"})
    text = client.get("/metrics").get_data(as_text=True)
    for labels in ('namespace="calls",outcome="miss",tier="l1"',
                   'namespace="calls",outcome="hit",tier="l1"',
                   'namespace="analytics",outcome="hit",tier="l2"',
                   'namespace="calls",outcome="bypass",tier="l1"'):
        assert f"gateway_cache_lookups_total{{{labels}}}" in text


def test_l1_is_bounded_in_entries(database_url, redis_url, redis_client):
    from gateway_app.policy import load_policy
    policy = load_policy()
    policy["caching"]["l1"]["max_entries"] = 3
    app = make_app(database_url, redis_url, GATEWAY_POLICY=policy)
    with app.app_context():
        tenant = __import__("tests.conftest", fromlist=["sign_up"]).sign_up(app.test_client())
        for page in range(6):
            assert tenant.get(f"/test/cache/calls?page={page}").headers["X-Cache"] == "MISS"
        assert len(app.extensions["gateway"].pipeline.stage("caching").tiers.l1._cache) <= 3
        # the oldest fell out of this worker's L1 but is still shared in L2
        assert tenant.get("/test/cache/calls?page=0").headers["X-Cache"] == "HIT-L2"
        assert tenant.get("/test/cache/calls?page=5").headers["X-Cache"] == "HIT-L1"
        Session.remove()
    app.extensions["gateway_engine"].dispose()


def test_l1_keeps_the_stored_copy_itself_and_it_cannot_be_changed(app, tenant):
    """WorkerMemoryCache: no pickling round trip per hit (the body is not copied), which is
    safe because a stored copy is made of immutable tuples."""
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "MISS"
    served = tenant.get("/test/cache/calls")
    assert served.headers["X-Cache"] == "HIT-L1"
    l1 = app.extensions["gateway"].pipeline.stage("caching").tiers.l1
    (key,) = [key for key in l1._cache if "calls" in key]
    first, again = l1.get(key), l1.get(key)
    assert first is again and first[2] is again[2]
    assert first[2] == served.get_data()
    assert isinstance(first, tuple) and isinstance(first[1], tuple)
    assert all(isinstance(header, tuple) for header in first[1])


def test_without_redis_both_tiers_live_in_the_process(tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/local.db", None)
    with app.app_context():
        from tests.conftest import sign_up
        tenant = sign_up(app.test_client())
        assert tenant.get("/test/cache/calls").headers["X-Cache"] == "MISS"
        assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
        assert tenant.get("/test/cache/customers").headers["X-Cache"] == "MISS"
        assert tenant.get("/test/cache/customers").headers["X-Cache"] == "HIT-L2"
        emit(tenant, "customers.updated", name="Renamed")
        fresh = tenant.get("/test/cache/customers")
        assert fresh.headers["X-Cache"] == "MISS" and fresh.get_json()["name"] == "Renamed"
        Session.remove()
    app.extensions["gateway_engine"].dispose()


def cache_commands(seen):
    return [command.split()[0].upper() for command in seen if "gw:cache:" in command]


def test_an_l1_hit_costs_one_redis_round_trip_and_no_payload(redis_url, tenant):
    if parse_redis_url(redis_url).topology != SINGLE:
        pytest.skip("MONITOR watches the server the URL names: one server only")
    tenant.get("/test/cache/calls")
    with redis_commands(redis_url) as seen:
        for _ in range(5):
            assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
    assert cache_commands(seen) == ["MGET"] * 5
    tenant.get("/test/cache/customers")
    with redis_commands(redis_url) as seen:
        assert tenant.get("/test/cache/customers").headers["X-Cache"] == "HIT-L2"
    assert cache_commands(seen) == ["MGET", "GET"]


def test_a_view_naming_an_unknown_namespace_stops_the_start(app):
    from flask import Blueprint

    from gateway_app.pipeline.caching import CachingStage
    from gateway_app.pipeline.declarations import gateway_policy
    from gateway_app.policy import PolicyError

    blp = Blueprint("misdeclared", __name__)
    blp.add_url_rule("/misdeclared", "calendar", gateway_policy(cache="calender")(lambda: "x"))
    app.register_blueprint(blp)
    with pytest.raises(PolicyError, match="misdeclared.calendar declares cache='calender'"):
        CachingStage(app, app.extensions["gateway"].policy["caching"], None, None)


def test_shared_generation_reads_never_use_a_read_sent_before_the_reader_arrived():
    from gateway_app.redis_store import BatchedReads, SharedRoundTrips

    fetch_started = []

    class Connection:
        @staticmethod
        def execute_all(commands):
            ((command, *keys),) = commands
            assert command == "MGET"
            fetch_started.append(time.monotonic())
            fetch_id = len(fetch_started) - 1
            time.sleep(0.005)   # a round trip, during which new readers arrive
            return [[str(fetch_id)] * len(keys)]

    reads = BatchedReads(SharedRoundTrips(Connection()))
    violations = []

    def reader(index):
        arrived = time.monotonic()
        (fetch_id,) = reads.read([f"key-{index % 3}"])
        if fetch_started[int(fetch_id)] < arrived:
            violations.append((index, fetch_id))

    threads = [threading.Thread(target=reader, args=(index,)) for index in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not violations
    assert len(fetch_started) <= 40
