"""Rate limiting (stage 3) through HTTP against real Redis: the seed's five layers at
their real numbers, tier multipliers, draft-11 headers, rejection bodies, all-or-nothing."""
import itertools

import http_sfv
import pytest
import redis as redis_lib
from flask import Flask, jsonify
from flask_limiter import Limiter

from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.redis_store import make_redis
from gateway_app.policy import PolicyError, load_policy, validate_policy
from gateway_app.db import Session
from tests.conftest import build_app, sign_up
from tests.support.queries import counted_queries

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
_addresses = itertools.count(1)


def fresh_ip():
    """A client address of its own, so one test's ip budget never meets another's."""
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


def from_ip(ip):
    return {"environ_base": {"REMOTE_ADDR": ip}}


def register_test_routes(app):
    """Test-only views declaring what business views declare (services are being written)."""
    def view(name, **policy):
        def handler():
            return jsonify(route=name)
        handler.__name__ = f"rl_{name}"
        app.add_url_rule(f"/test-rl/{name}", view_func=gateway_policy(**policy)(handler),
                         methods=["GET", "POST"])
    view("public", public=True)
    view("exempt", public=True, exempt_limits=True)
    view("private")
    view("billing", service="billing", permission=None)
    view("dashboard", service="dashboard", permission=None)
    view("invites", service="team", permission=None, resource="team_invites")
    view("bookings", service="team", permission=None, resource="bookings")
    view("exports", service="billing", permission=None, resource="call_exports")
    view("cached", cache="settings")
    view("writes", cache="settings", permission="customers:write")


@pytest.fixture(autouse=True)
def test_routes(app):
    register_test_routes(app)


def stage(app):
    return app.extensions["gateway"].pipeline.stage("rate_limiting")


def preset(app, layer, subject, count):
    """Put ``count`` requests into the current window of every quota of ``layer`` for ``subject``."""
    limiter = stage(app).limiter
    client = limiter.shared.get_connection()
    for quota in stage(app).policies.for_subject(layer, subject):
        _previous, current = limiter.shared.window_keys(quota.key)
        client.set(current, count, px=quota.window * 2000)


def used(app, layer, subject, company_id=None):
    """The weighted count of each quota of ``layer`` for ``subject``, by policy name."""
    shared = stage(app).limiter.shared
    counts = {}
    for quota in stage(app).policies.for_subject(layer, subject, company_id):
        previous, previous_ttl, current, _ = shared.get_sliding_window(quota.key, quota.window)
        counts[quota.name] = int(previous * previous_ttl / quota.window) + current
    return counts


def hammer(call, times):
    return [call().status_code for _ in range(times)]


def parse_list(value):
    parsed = http_sfv.List()
    parsed.parse(value.encode())
    return parsed


def policies(response):
    return {member.value: dict(member.params) for member in parse_list(response.headers["RateLimit-Policy"])}


def test_ip_burst_trips_at_the_51st_anonymous_request(client):
    ip = fresh_ip()
    statuses = hammer(lambda: client.get("/test-rl/public", **from_ip(ip)), 51)
    assert statuses == [200] * 50 + [429]
    refused = client.get("/test-rl/public", **from_ip(ip))
    body = refused.get_json()
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert (body["layer"], body["policy"], body["limit"], body["window"]) == ("ip", "burst", 50, 60)
    assert body["retry_after"] == int(refused.headers["Retry-After"])
    # the 50 hits opened a fresh 60 s window; a request fits again once it has ended
    assert 55 <= body["retry_after"] <= 60
    assert parse_list(refused.headers["RateLimit"])[0].value == "burst"
    assert parse_list(refused.headers["RateLimit"])[0].params["r"] == 0
    # another address is not affected
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200


def test_ip_hourly_limit_trips_at_1000(app, client):
    ip = fresh_ip()
    preset(app, "ip", ip, 0)
    shared = stage(app).limiter.shared
    hourly = next(q for q in stage(app).policies.for_subject("ip", ip) if q.name == "ip")
    _previous, current = shared.window_keys(hourly.key)
    shared.get_connection().set(current, 997, px=7200 * 1000)
    statuses = hammer(lambda: client.get("/test-rl/public", **from_ip(ip)), 4)
    assert statuses == [200, 200, 200, 429]
    assert client.get("/test-rl/public", **from_ip(ip)).get_json()["policy"] == "ip"


def test_retry_after_follows_the_sliding_window(app, client):
    """80 requests in the previous minute, 45 s of it still weighing: 80*45/60 = 60 counted.
    One more fits once 80*(45-t)/60 < 50, i.e. after 7.5 s: Retry-After 8."""
    ip = fresh_ip()
    shared = stage(app).limiter.shared
    burst = next(q for q in stage(app).policies.for_subject("ip", ip) if q.name == "burst")
    previous, current = shared.window_keys(burst.key)
    shared.get_connection().set(previous, 80, px=45_000)
    shared.get_connection().set(current, 0, px=105_000)
    refused = client.get("/test-rl/public", **from_ip(ip))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "8"
    assert refused.headers["RateLimit"] == '"burst";r=0;t=8'
    assert refused.get_json()["retry_after"] == 8


def test_spoofed_forwarded_for_entries_are_ignored(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url, TRUSTED_PROXY_HOPS=1)
    register_test_routes(app)
    client = app.test_client()
    # the client prepends a different "address" every time; the proxy appends the real one
    statuses = [client.get("/test-rl/public", headers={
        "X-Forwarded-For": f"10.{i}.0.1, 203.0.113.77"}).status_code for i in range(51)]
    assert statuses == [200] * 50 + [429]
    assert used(app, "ip", "203.0.113.77")["burst"] == 50
    app.extensions["gateway_engine"].dispose()


def test_anonymous_requests_meet_the_ip_layer_only(client):
    response = client.get("/test-rl/public", **from_ip(fresh_ip()))
    assert set(policies(response)) == {"ip", "burst"}
    assert policies(response)["ip"] == {"q": 1000, "w": 3600}
    assert policies(response)["burst"] == {"q": 50, "w": 60}
    assert "Retry-After" not in response.headers


def test_exempt_routes_are_not_limited(client):
    ip = fresh_ip()
    for path in ("/test-rl/exempt", "/health", "/webhooks/unknown-provider"):
        statuses = hammer(lambda: client.get(path, **from_ip(ip)), 55)
        assert 429 not in statuses and len(set(statuses)) == 1
    response = client.get("/health", **from_ip(ip))
    assert "RateLimit" not in response.headers and "RateLimit-Policy" not in response.headers
    # exempt traffic spent nothing of the address's budget
    current = parse_list(client.get("/test-rl/public", **from_ip(ip)).headers["RateLimit"])[0]
    assert (current.value, current.params["r"]) == ("burst", 49)


def test_user_layer_trips_at_500(app, tenant_factory):
    tenant = tenant_factory()
    statuses = [tenant.get("/test-rl/private", **from_ip(fresh_ip())).status_code for _ in range(501)]
    assert statuses == [200] * 500 + [429]
    refused = tenant.get("/test-rl/private", **from_ip(fresh_ip()))
    assert refused.get_json()["layer"] == "user"
    assert used(app, "user", f"user:{tenant.user['id']}", tenant.company["id"]) == {"user": 500}


@pytest.mark.parametrize("tier, limit", [("free", 2000), ("pro", 6000), ("enterprise", 20000),
                                         ("unlimited", 100000)])
def test_company_layer_by_tier(app, tenant_factory, tier, limit):
    tenant = tenant_factory(tier)
    company = str(tenant.company["id"])
    preset(app, "company", company, limit - 2)
    first = tenant.get("/test-rl/private", **from_ip(fresh_ip()))
    assert first.status_code == 200
    assert policies(first)["company"] == {"q": limit, "w": 3600}
    # the company is the policy closest to exhaustion: one request left
    assert parse_list(first.headers["RateLimit"])[0].value == "company"
    assert parse_list(first.headers["RateLimit"])[0].params["r"] == 1
    assert tenant.get("/test-rl/private", **from_ip(fresh_ip())).status_code == 200
    refused = tenant.get("/test-rl/private", **from_ip(fresh_ip()))
    assert refused.status_code == 429
    assert (refused.get_json()["layer"], refused.get_json()["limit"]) == ("company", limit)


def test_company_layer_is_shared_by_the_companys_users(app, tenant_factory):
    tenant = tenant_factory()
    preset(app, "company", str(tenant.company["id"]), 1999)
    assert tenant.get("/test-rl/private", **from_ip(fresh_ip())).status_code == 200
    other = tenant_factory()  # another company is unaffected
    assert other.get("/test-rl/private", **from_ip(fresh_ip())).status_code == 200
    assert tenant.get("/test-rl/private", **from_ip(fresh_ip())).get_json()["layer"] == "company"


def test_a_tier_change_applies_to_the_next_request(app, tenant_factory):
    tenant = tenant_factory("free")
    preset(app, "company", str(tenant.company["id"]), 2000)
    assert tenant.get("/test-rl/private", **from_ip(fresh_ip())).status_code == 429
    changed = app.test_client().patch(f"/gateway/admin/companies/{tenant.company['id']}",
                                      json={"tier": "pro"}, headers=ADMIN)
    assert changed.status_code == 200, changed.get_json()
    upgraded = tenant.get("/test-rl/private", **from_ip(fresh_ip()))
    assert upgraded.status_code == 200
    assert policies(upgraded)["company"]["q"] == 6000
    # the counts made before the upgrade still count against the new size
    current = parse_list(upgraded.headers["RateLimit"])[0]
    assert (current.value, current.params["r"]) == ("company", 6000 - 2001)


@pytest.mark.parametrize("tier, limit", [("free", 20), ("pro", 60)])
def test_endpoint_layer_per_service_times_tier(app, tenant_factory, tier, limit):
    tenant = tenant_factory(tier)
    statuses = [tenant.get("/test-rl/billing", **from_ip(fresh_ip())).status_code
                for _ in range(limit + 1)]
    assert statuses == [200] * limit + [429]
    refused = tenant.get("/test-rl/billing", **from_ip(fresh_ip()))
    assert (refused.get_json()["layer"], refused.get_json()["limit"]) == ("endpoint", limit)
    # another service has its own budget
    dashboard = tenant.get("/test-rl/dashboard", **from_ip(fresh_ip()))
    assert dashboard.status_code == 200
    assert policies(dashboard)["endpoint"] == {"q": 100 * (3 if tier == "pro" else 1), "w": 3600}


def test_endpoint_layer_enterprise_multiplier_by_headers(app, tenant_factory):
    tenant = tenant_factory("enterprise")
    response = tenant.get("/test-rl/billing", **from_ip(fresh_ip()))
    assert policies(response)["endpoint"] == {"q": 200, "w": 3600}
    assert policies(tenant_factory("unlimited").get("/test-rl/billing", **from_ip(fresh_ip())))[
        "endpoint"] == {"q": 1000, "w": 3600}


def test_resource_layer_per_company_per_day(app, tenant_factory):
    tenant = tenant_factory()
    statuses = [tenant.post("/test-rl/invites", **from_ip(fresh_ip())).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    refused = tenant.post("/test-rl/invites", **from_ip(fresh_ip()))
    body = refused.get_json()
    assert (body["layer"], body["policy"], body["limit"], body["window"]) == ("resource", "resource", 20, 86400)
    # other resource types keep their own budget
    assert tenant.post("/test-rl/bookings", **from_ip(fresh_ip())).status_code == 200


def test_resource_layer_scaled_by_tier(app, tenant_factory):
    tenant = tenant_factory("pro")
    company = str(tenant.company["id"])
    preset(app, "resource", f"{company}:bookings", 598)
    ok = tenant.post("/test-rl/bookings", **from_ip(fresh_ip()))
    assert ok.status_code == 200 and policies(ok)["resource"] == {"q": 600, "w": 86400}
    assert tenant.post("/test-rl/bookings", **from_ip(fresh_ip())).status_code == 200
    assert tenant.post("/test-rl/bookings", **from_ip(fresh_ip())).get_json()["layer"] == "resource"


def test_headers_list_every_policy_that_applied(app, tenant_factory):
    tenant = tenant_factory()
    response = tenant.post("/test-rl/exports", **from_ip(fresh_ip()))
    assert response.status_code == 200
    listed = policies(response)
    assert list(listed) == ["ip", "burst", "user", "company", "endpoint", "resource"]
    assert listed == {"ip": {"q": 1000, "w": 3600}, "burst": {"q": 50, "w": 60},
                      "user": {"q": 500, "w": 3600}, "company": {"q": 2000, "w": 3600},
                      "endpoint": {"q": 20, "w": 3600}, "resource": {"q": 20, "w": 86400}}
    current = parse_list(response.headers["RateLimit"])
    assert len(current) == 1
    assert current[0].value in ("endpoint", "resource")   # both at 19 of 20
    assert current[0].params["r"] == 19
    assert 0 <= current[0].params["t"] <= 86400
    assert "Retry-After" not in response.headers


def test_a_later_layer_rejection_spends_no_earlier_budget(app, tenant_factory):
    tenant = tenant_factory()
    ip = fresh_ip()
    rate_key = f"user:{tenant.user['id']}"
    company = str(tenant.company["id"])
    assert hammer(lambda: tenant.get("/test-rl/billing", **from_ip(ip)), 20) == [200] * 20
    before = (used(app, "ip", ip), used(app, "user", rate_key, company), used(app, "company", company))
    assert before == ({"ip": 20, "burst": 20}, {"user": 20}, {"company": 20})
    assert hammer(lambda: tenant.get("/test-rl/billing", **from_ip(ip)), 10) == [429] * 10
    assert (used(app, "ip", ip), used(app, "user", rate_key, company), used(app, "company", company)) == before
    assert used(app, "endpoint", f"{rate_key}:billing", company) == {"endpoint": 20}
    # so the address still has 30 of its 50/minute burst for other services
    assert hammer(lambda: tenant.get("/test-rl/dashboard", **from_ip(ip)), 30) == [200] * 30
    assert tenant.get("/test-rl/dashboard", **from_ip(ip)).get_json()["policy"] == "burst"


def test_plain_flask_limiter_spends_earlier_limits_on_a_later_breach(redis_url, redis_client):
    """Why the gateway batches: flask-limiter hits limits one by one, smallest window first,
    so requests refused by a later limit have already spent the earlier ones."""
    app = Flask("plain")
    limiter = Limiter(key_func=lambda: "client", app=app, storage_uri=redis_url,
                      strategy="sliding-window-counter")

    @app.route("/")
    @limiter.limit("3/minute")      # checked first (smaller window), like the burst
    @limiter.limit("1/hour")        # a later layer
    def index():
        return "ok"

    client = app.test_client()
    assert client.get("/").status_code == 200
    assert [client.get("/").status_code for _ in range(2)] == [429, 429]
    minute_keys = [key for key in redis_client.scan_iter("LIMITS:*3/1/minute*") if not key.endswith(b"/-1")]
    # the two refused requests consumed the 3/minute budget although nothing more was served
    assert [int(redis_client.get(key)) for key in minute_keys] == [3]
    assert client.get("/").status_code == 429


def test_admin_resets_a_key(app, client):
    ip = fresh_ip()
    assert hammer(lambda: client.get("/test-rl/public", **from_ip(ip)), 51)[-1] == 429
    assert client.delete(f"/gateway/admin/rate-limits/ip/{ip}").status_code == 401
    reset = client.delete(f"/gateway/admin/rate-limits/ip/{ip}", headers=ADMIN)
    assert reset.status_code == 200
    assert reset.get_json() == {"layer": "ip", "key": ip, "cleared": ["ip", "burst", "admin_refusals"]}
    assert client.get("/test-rl/public", **from_ip(ip)).status_code == 200
    assert used(app, "ip", ip) == {"ip": 1, "burst": 1}


def test_counts_read_the_same_through_limits_own_sliding_window(app, client):
    """The batched script keeps limits' keys and arithmetic: limits' single-limit acquire
    agrees with it about what is left."""
    ip = fresh_ip()
    assert hammer(lambda: client.get("/test-rl/public", **from_ip(ip)), 49) == [200] * 49
    shared = stage(app).limiter.shared
    burst = next(q for q in stage(app).policies.for_subject("ip", ip) if q.name == "burst")
    assert shared.acquire_sliding_window_entry(burst.key, 50, 60)       # the 50th fits
    assert not shared.acquire_sliding_window_entry(burst.key, 50, 60)   # the 51st does not
    assert client.get("/test-rl/public", **from_ip(ip)).status_code == 429


def test_the_admin_api_is_not_limited(client):
    ip = fresh_ip()
    statuses = hammer(lambda: client.delete(f"/gateway/admin/rate-limits/ip/{ip}",
                                            headers=ADMIN, **from_ip(ip)), 60)
    assert statuses == [200] * 60


def test_admin_resets_endpoint_and_resource_keys(app, tenant_factory, client):
    tenant = tenant_factory()
    rate_key = f"user:{tenant.user['id']}"
    hammer(lambda: tenant.get("/test-rl/billing", **from_ip(fresh_ip())), 21)
    reset = client.delete(f"/gateway/admin/rate-limits/endpoint/{rate_key}:billing", headers=ADMIN)
    assert reset.status_code == 200 and reset.get_json()["cleared"] == ["endpoint"]
    assert tenant.get("/test-rl/billing", **from_ip(fresh_ip())).status_code == 200
    company = tenant.company["id"]
    preset(app, "resource", f"{company}:bookings", 200)
    assert tenant.post("/test-rl/bookings", **from_ip(fresh_ip())).status_code == 429
    assert client.delete(f"/gateway/admin/rate-limits/resource/{company}:bookings",
                         headers=ADMIN).status_code == 200
    assert tenant.post("/test-rl/bookings", **from_ip(fresh_ip())).status_code == 200


@pytest.mark.parametrize("path", ["/gateway/admin/rate-limits/galaxy/1",
                                  "/gateway/admin/rate-limits/endpoint/user:1:nowhere",
                                  "/gateway/admin/rate-limits/resource/3"])
def test_admin_reset_of_an_unknown_key_is_404(client, path):
    response = client.delete(path, headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_view_declaring_an_undefined_resource_stops_the_start(database_url, redis_url):
    import blueprints.ops as ops
    ops.ready.gateway_policy["resource"] = "moon_landings"
    try:
        with pytest.raises(PolicyError, match="moon_landings"):
            build_app(database_url, redis_url)
    finally:
        del ops.ready.gateway_policy["resource"]


def test_policy_names_must_match_the_limits():
    raw = load_policy()
    raw["rate_limiting"]["layers"]["ip"]["names"] = ["ip"]
    with pytest.raises(PolicyError, match=r"rate_limiting\.layers\.ip\.names"):
        validate_policy(raw)


def test_rejections_are_counted_by_layer(client):
    ip = fresh_ip()

    def rejected():
        text = client.get("/metrics").get_data(as_text=True)
        line = [ln for ln in text.splitlines()
                if ln.startswith('gateway_rate_limit_rejections_total{layer="ip"}')]
        return float(line[0].split()[-1]) if line else 0.0
    before = rejected()
    hammer(lambda: client.get("/test-rl/public", **from_ip(ip)), 53)
    assert rejected() == before + 3


def test_requests_sent_together_are_taken_in_turn_each_all_or_nothing(redis_url, redis_client):
    """A worker's concurrent requests share one script call: the second of two requests for
    the last unit of a quota is refused, and its refusal spends nothing of its other quota.
    (The keys share a hash tag, as a request's quotas do: one script call on a Cluster too.)"""
    import redis as redis_lib

    from gateway_app.ratelimit.storage import BatchedRedisStorage
    storage = BatchedRedisStorage(make_redis(redis_url))
    first = (("{batch}shared", 1, 60), ("{batch}first-only", 10, 60))
    second = (("{batch}second-only", 10, 60), ("{batch}shared", 1, 60))
    taken_first, taken_second = storage.acquire_batch([first, second])
    assert taken_first.allowed is True and taken_second.allowed is False
    assert taken_second.windows[1].used == 1          # the unit the first request took
    untouched = storage.acquire_batch([(("{batch}second-only", 1, 60),)])[0]
    assert untouched.allowed is True                  # nothing was spent by the refusal


def test_a_batch_of_one_callers_requests_is_counted_as_if_sent_one_by_one(redis_url, redis_client):
    """The script reads each key once per call and writes each counter once, at the end
    (acquire_all.lua): the answers and the counts it leaves are those of the same
    requests sent one at a time - also across a window that rolls over and a new key."""
    import redis as redis_lib

    from gateway_app.ratelimit.storage import BatchedRedisStorage
    storage = BatchedRedisStorage(make_redis(redis_url))

    def quotas(prefix):
        # a current window about to roll over (its TTL under one window), and a new key
        redis_client.set(storage.window_keys(f"{{{prefix}}}rolling")[1], 3, px=50_000)
        return ((f"{{{prefix}}}rolling", 6, 60), (f"{{{prefix}}}fresh", 100, 60))

    def state(prefix):
        keys = storage.window_keys(f"{{{prefix}}}rolling") + storage.window_keys(f"{{{prefix}}}fresh")
        return [(redis_client.get(key), redis_client.pttl(key) > 0) for key in keys]

    together = storage.acquire_batch([quotas("together")] * 8)
    one_by_one = [storage.acquire_batch([quotas_of_one])[0]
                  for quotas_of_one in [quotas("alone")] * 8]
    assert [a.allowed for a in together] == [a.allowed for a in one_by_one] == [True] * 4 + [False] * 4
    assert [a.used for a in together] == [a.used for a in one_by_one]
    assert [[(w.previous_count, w.current_count) for w in a.windows] for a in together] == \
        [[(w.previous_count, w.current_count) for w in a.windows] for a in one_by_one]
    assert state("together") == state("alone")
    # rolled over: the 3 now weigh floor(3 * 50/60) = 2 as the previous window, so 4 more fit
    assert state("together") == [(b"3", True), (b"4", True), (None, False), (b"4", True)]


def test_limits_still_apply_after_redis_lost_its_scripts(app, database_url, private_redis):
    """A Redis restart or SCRIPT FLUSH drops the cached script: the next request loads it
    again and is counted like any other. SCRIPT FLUSH empties the whole server's script
    cache, every database's, so this test has a Redis of its own."""
    own = build_app(database_url, private_redis.url)
    register_test_routes(own)
    with own.app_context():
        tenant = sign_up(own.test_client())
        ip = fresh_ip()
        first = tenant.get("/test-rl/private", **from_ip(ip))
        assert first.status_code == 200
        redis_lib.Redis.from_url(private_redis.url).script_flush()
        second = tenant.get("/test-rl/private", **from_ip(ip))
        assert second.status_code == 200
        before = parse_list(first.headers["RateLimit"])[0]
        after = parse_list(second.headers["RateLimit"])[0]
        assert not stage(own).limiter.in_outage     # counted in Redis, not per process
        assert after.value == before.value and after.params["r"] == before.params["r"] - 1
    own.extensions["gateway_engine"].dispose()


def test_prepared_quota_sets_are_bounded_and_each_caller_keeps_its_own_count(app, client):
    """Each distinct caller's quotas and script operands are prepared once and kept, in
    bounded least-recently-used caches: every address keeps its own count."""
    prepared = (stage(app).policies.quota_set, stage(app).limiter.shared.operands_of)
    assert all(0 < memo.cache_info().maxsize <= 10_000 for memo in prepared)
    addresses = [fresh_ip() for _ in range(7)]
    for round_number in (1, 2):
        for ip in addresses:
            response = client.get("/test-rl/public", **from_ip(ip))
            assert response.status_code == 200
            current = parse_list(response.headers["RateLimit"])[0]
            assert (current.value, current.params["r"]) == ("burst", 50 - round_number)


def test_a_changed_principal_is_resolved_afresh_and_counted_once(app, tenant):
    """A cached principal whose versions changed is resolved from the database, and the
    request spends one unit like any other."""
    ip = fresh_ip()
    for _ in range(2):
        assert tenant.get("/test-rl/cached", **from_ip(ip)).status_code == 200
    Session.remove()
    app.extensions["gateway"].identity.principals.bump_company(tenant.company["id"])
    with counted_queries(app) as statements:
        assert tenant.get("/test-rl/cached", **from_ip(ip)).status_code == 200
    assert any("FROM users" in statement for statement in statements)   # resolved afresh
    assert used(app, "user", f"user:{tenant.user['id']}", tenant.company["id"])["user"] == 3


def api_key(tenant, scopes=("read",)):
    made = tenant.post("/api/v1/settings/api-keys", json={"name": "k", "scopes": list(scopes)})
    assert made.status_code == 201, made.get_json()
    return made.get_json()["id"], {"X-API-Key": made.get_json()["key"]}


def skip_on_a_cluster(app):
    if getattr(app.extensions["gateway"].round_trips, "clustered", False):
        pytest.skip("counts one connection's round trips; a Cluster's: tests/test_redis_topologies.py")


def company_used(app, tenant):
    return used(app, "company", str(tenant.company["id"]))["company"]


def test_a_cached_principals_round_trip_takes_its_quotas_ahead(app, tenant, monkeypatch):
    """Confirming a cached principal, reading caching's tokens and taking the quotas is
    one round trip per request."""
    skip_on_a_cluster(app)
    connection = app.extensions["gateway"].round_trips.connection
    rounds, original = [], connection.execute_all

    def recording(commands):
        rounds.append([command[0] for command in commands])
        return original(commands)

    monkeypatch.setattr(connection, "execute_all", recording)
    ip = fresh_ip()
    for _ in range(2):   # the principal, then the answer, cached
        tenant.get("/test-rl/cached", **from_ip(ip))
    rounds.clear()
    for _ in range(3):
        response = tenant.get("/test-rl/cached", **from_ip(ip))
        assert response.headers["X-Cache"] == "HIT-L1" and "RateLimit" in response.headers
    assert rounds == [["MGET", "EVALSHA"]] * 3


def test_quotas_taken_ahead_for_a_revoked_key_are_given_back(app, tenant):
    key_id, headers = api_key(tenant)
    ip = fresh_ip()
    for _ in range(2):   # the key's principal is cached
        assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 200
    assert tenant.delete(f"/api/v1/settings/api-keys/{key_id}").status_code == 204
    before = company_used(app, tenant)
    refused = tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip))
    assert refused.status_code == 401
    assert company_used(app, tenant) == before   # taken ahead, given back


def test_a_revoked_keys_cached_principal_is_forgotten(app, tenant, monkeypatch):
    """After the first refusal the revoked key is looked up in the database only: no
    more quotas taken ahead for it."""
    key_id, headers = api_key(tenant)
    ip = fresh_ip()
    for _ in range(2):
        assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 200
    assert tenant.delete(f"/api/v1/settings/api-keys/{key_id}").status_code == 204
    assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 401
    skip_on_a_cluster(app)
    connection = app.extensions["gateway"].round_trips.connection
    rounds, original = [], connection.execute_all
    monkeypatch.setattr(connection, "execute_all",
                        lambda commands: rounds.append([c[0] for c in commands]) or original(commands))
    for _ in range(3):
        assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 401
    assert rounds == [["EVALSHA"]] * 3   # each refusal spends the ip layer, nothing read or taken ahead


def test_quotas_taken_ahead_for_a_forbidden_request_are_given_back(app, tenant):
    _key_id, headers = api_key(tenant, scopes=("read",))
    ip = fresh_ip()
    assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 200
    before = company_used(app, tenant)
    forbidden = tenant.client.get("/test-rl/writes", headers=headers, **from_ip(ip))
    assert forbidden.status_code == 403
    assert company_used(app, tenant) == before
    assert tenant.client.get("/test-rl/cached", headers=headers, **from_ip(ip)).status_code == 200
    assert company_used(app, tenant) == before + 1


def test_a_tier_change_after_quotas_were_taken_ahead_spends_one_unit(app, tenant):
    ip = fresh_ip()
    for _ in range(2):
        assert tenant.get("/test-rl/cached", **from_ip(ip)).status_code == 200
    preset(app, "company", str(tenant.company["id"]), 10)
    changed = app.test_client().patch(f"/gateway/admin/companies/{tenant.company['id']}",
                                      json={"tier": "pro"}, headers=ADMIN)
    assert changed.status_code == 200
    upgraded = tenant.get("/test-rl/cached", **from_ip(ip))
    assert upgraded.status_code == 200
    assert policies(upgraded)["company"]["q"] == 6000
    assert company_used(app, tenant) == 11   # taken ahead at the free size, given back, taken again


def test_a_unit_given_back_after_its_window_rolled_over_leaves_the_previous_window(app):
    """A window that rolled over between the take and the give-back holds the unit in
    its previous key: that one is decremented, the new current window left alone."""
    storage = stage(app).limiter.shared
    limits = ((f"give-back:{fresh_ip()}", 10, 60),)
    (taken,) = storage.acquire_batch([limits])
    assert taken.allowed
    previous, current = storage.window_keys(limits[0][0])
    client = storage.get_connection()
    reported_ttl = taken.windows[0].current_ttl * 1000
    # as acquire_all.lua rolls a window over: the new current window lives the old one's
    # remaining TTL plus a window, longer than the TTL the take reported
    client.rename(current, previous)
    client.set(current, 4, px=int(reported_ttl) + 5_000)
    storage.give_back(limits, taken)
    assert (int(client.get(previous)), int(client.get(current))) == (0, 4)


@pytest.mark.parametrize("credentials", [
    {"X-API-Key": "gwk_0123456789ab_guessedguessedguessedguessedguessed"},   # well formed, unknown
    {"X-API-Key": "not-a-key"},                                              # malformed
    {"Authorization": "Bearer not.a.token"},                                 # a forged token
    {},                                                                      # none at all
])
def test_refused_credentials_spend_the_ip_layer(client, credentials):
    ip = fresh_ip()
    statuses = [client.get("/test-rl/private", headers=credentials, **from_ip(ip)).status_code
                for _ in range(51)]
    assert statuses == [401] * 50 + [429]
    refused = client.get("/test-rl/private", headers=credentials, **from_ip(ip))
    assert refused.status_code == 429 and refused.get_json()["layer"] == "ip"
    assert client.get("/test-rl/public", **from_ip(fresh_ip())).status_code == 200   # others unaffected


def test_wrong_admin_tokens_are_throttled_per_address(client):
    ip = fresh_ip()
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    statuses = [client.get("/gateway/admin/breakers", headers=wrong, **from_ip(ip)).status_code
                for _ in range(11)]
    assert statuses == [401] * 10 + [429]   # admin_refusals: 10 a minute
    # the right token from that address is still refused until the window frees up: the
    # guesser cannot tell a right guess from a wrong one meanwhile
    assert client.get("/gateway/admin/breakers", headers=ADMIN, **from_ip(ip)).status_code == 429
    assert client.get("/gateway/admin/breakers", headers=ADMIN, **from_ip(fresh_ip())).status_code == 200


def test_an_address_that_spent_its_burst_may_still_use_the_admin_api(client):
    """The ip layer is an address's ordinary traffic: once spent, the admin API (to reset
    it, say) still answers the right token; only wrong admin tokens lock it out."""
    ip = fresh_ip()
    statuses = [client.get("/test-rl/public", **from_ip(ip)).status_code for _ in range(51)]
    assert statuses[-1] == 429
    reset = client.delete(f"/gateway/admin/rate-limits/ip/{ip}", headers=ADMIN, **from_ip(ip))
    assert reset.status_code == 200, reset.get_json()
    assert client.get("/test-rl/public", **from_ip(ip)).status_code == 200


def test_an_unknown_api_key_guessed_again_costs_no_database_query(app, client):
    guess = {"X-API-Key": "gwk_0123456789ab_guessedguessedguessedguessedguessed"}
    assert client.get("/test-rl/private", headers=guess, **from_ip(fresh_ip())).status_code == 401
    with counted_queries(app) as statements:
        for _ in range(3):
            assert client.get("/test-rl/private", headers=guess, **from_ip(fresh_ip())).status_code == 401
    assert statements == []


@pytest.mark.parametrize("limits, used, closest", [
    ((1000, 50, 500), (10, 40, 100), 1),      # 10 of 50 left is the smallest share
    ((100, 10), (50, 5), 1),                  # equal shares: the fewer left
    ((10, 100), (12, 99), 0),                 # over its limit: nothing left
    ((60, 60, 60), (1, 1, 1), 0),             # all equal: the first
])
def test_the_ratelimit_header_names_the_quota_closest_to_exhaustion(limits, used, closest):
    from gateway_app.ratelimit.limiter import Decision
    from gateway_app.ratelimit.quotas import Quota, QuotaSet
    quota_set = QuotaSet.of(Quota("ip", f"q{i}", "x", limit, 60, "ip:x") for i, limit in enumerate(limits))
    decision = Decision(True, quota_set, [f"window {i}" for i in range(len(limits))], list(used))
    assert decision.closest_to_exhaustion() == (quota_set.quotas[closest], f"window {closest}")
