"""Invalidation through real writes: every configured rule, wildcards, cascades, company-
and user-specific events, admin purges, and stale copies for the circuit-breaker fallback."""
import copy

import pytest
import yaml

from gateway_app.db import Session
from gateway_app.policy import DEFAULT_PATH, validate_policy
from tests.test_cache import emit, make_app, second_user

NAMESPACES = ["dashboard", "calls", "session", "settings", "customers", "appointments",
              "analytics", "company_settings", "billing"]
ADMIN = {"Authorization": "Bearer admin-token-for-tests"}


def policy_with(invalidation=None, cascades=None):
    with open(DEFAULT_PATH, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    raw = copy.deepcopy(raw)
    if invalidation is not None:
        raw["caching"]["invalidation"].update(invalidation)
    if cascades is not None:
        raw["caching"]["cascades"] = cascades
    return validate_policy(raw)


SMART_RULES = policy_with(
    invalidation={"settings.changed": ["settings*"], "session.changed": ["session"],
                  "company.*": ["*"], "appointments.updated": ["appointments"]},
    cascades={"appointments": ["billing"], "billing": ["calls*"]})


@pytest.fixture
def app(request, database_url, redis_url, redis_client):
    overrides = {"GATEWAY_POLICY": request.param} if hasattr(request, "param") else {}
    app = make_app(database_url, redis_url, **overrides)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def warm(tenant, namespaces=NAMESPACES, suffix=""):
    names = {}
    for namespace in namespaces:
        response = tenant.get(f"/test/cache/{namespace}{suffix}")
        assert response.status_code == 200
        names[namespace] = response.get_json()
        assert tenant.get(f"/test/cache/{namespace}{suffix}").headers["X-Cache"].startswith("HIT")
    return names


def invalidated(tenant, namespaces=NAMESPACES, suffix=""):
    """The namespaces whose next GET misses (the others must hit)."""
    result = set()
    for namespace in namespaces:
        status = tenant.get(f"/test/cache/{namespace}{suffix}").headers["X-Cache"]
        assert status in ("MISS", "HIT-L1", "HIT-L2")
        if status == "MISS":
            result.add(namespace)
    return result


@pytest.mark.parametrize("event, expected", [
    ("calls.created", {"dashboard", "analytics", "calls"}),
    ("calls.updated", {"dashboard", "analytics", "calls"}),
    ("appointments.updated", {"appointments", "analytics", "dashboard"}),
    ("customers.updated", {"customers", "dashboard", "calls"}),   # cascade customers -> calls
    ("settings.changed", {"settings", "company_settings", "appointments", "analytics", "dashboard"}),
    ("billing.updated", {"billing"}),
    ("billing.refreshed", set()),                                  # no rule: nothing
])
def test_each_configured_rule_invalidates_its_namespaces_and_only_those(tenant, event, expected):
    warm(tenant)
    emit(tenant, event, name="After the write")
    assert invalidated(tenant) == expected
    for namespace in expected:
        assert tenant.get(f"/test/cache/{namespace}").get_json()["name"] == "After the write"


def test_an_event_invalidates_only_its_own_company(tenant_factory):
    first, second = tenant_factory(), tenant_factory()
    warm(first, ["calls"])
    warm(second, ["calls"])
    emit(first, "calls.created")
    assert invalidated(first, ["calls"]) == {"calls"}
    assert invalidated(second, ["calls"]) == set()


def test_a_rolled_back_write_invalidates_nothing(tenant):
    warm(tenant, ["calls"])
    emit(tenant, "calls.created", name="Never committed", rollback=True)
    assert invalidated(tenant, ["calls"]) == set()


def test_company_wide_events_reach_every_users_per_user_entries(tenant):
    colleague = second_user(tenant)
    warm(tenant, ["dashboard"], "/mine")
    warm(colleague, ["dashboard"], "/mine")
    # the event names its actor, but dashboard is company data: everyone's copy goes
    emit(tenant, "calls.created", user_id=tenant.user["id"])
    assert invalidated(tenant, ["dashboard"], "/mine") == {"dashboard"}
    assert invalidated(colleague, ["dashboard"], "/mine") == {"dashboard"}


@pytest.mark.parametrize("app", [SMART_RULES], indirect=True)
def test_user_specific_event_invalidates_only_that_users_entries(tenant):
    colleague = second_user(tenant)
    warm(tenant, ["session"])
    warm(colleague, ["session"])
    assert tenant.get("/test/cache/session").get_json()["user"] == tenant.user["id"]
    emit(tenant, "session.changed", user_id=colleague.user["id"])
    assert invalidated(colleague, ["session"]) == {"session"}
    assert invalidated(tenant, ["session"]) == set()
    emit(tenant, "session.changed")   # no user named: the whole company
    assert invalidated(colleague, ["session"]) == {"session"}
    assert invalidated(tenant, ["session"]) == {"session"}


@pytest.mark.parametrize("app", [SMART_RULES], indirect=True)
def test_wildcard_targets_and_event_patterns(tenant):
    warm(tenant)
    emit(tenant, "settings.changed")
    assert invalidated(tenant) == {"settings"}   # settings* = settings (session is not settings*)
    warm(tenant)
    emit(tenant, "company.deleted")              # company.* -> "*"
    assert invalidated(tenant) == set(NAMESPACES)


@pytest.mark.parametrize("app", [SMART_RULES], indirect=True)
def test_cascades_are_transitive(tenant):
    warm(tenant)
    emit(tenant, "appointments.updated")
    # appointments -> billing (cascade) -> calls* (cascade)
    assert invalidated(tenant) == {"appointments", "billing", "calls"}


def test_rule_targets_must_name_namespaces_or_patterns():
    from gateway_app.policy import PolicyError
    with pytest.raises(PolicyError, match="unknown namespace 'calender'"):
        policy_with(invalidation={"calls.created": ["calender"]})


def test_admin_purge_by_namespace_company_and_pattern(client, tenant_factory):
    first, second = tenant_factory(), tenant_factory()
    assert client.post("/gateway/admin/cache/purge", json={}).status_code == 401
    for tenant in (first, second):
        warm(tenant)
    purge = client.post("/gateway/admin/cache/purge", json={"namespace": "calls"}, headers=ADMIN)
    assert purge.status_code == 200
    assert purge.get_json() == {"namespaces": ["calls"], "company_id": None}
    assert invalidated(first) == invalidated(second) == {"calls"}

    purge = client.post("/gateway/admin/cache/purge", json={"company_id": first.company["id"]},
                        headers=ADMIN)
    assert purge.status_code == 200
    assert invalidated(first) == set(NAMESPACES)
    assert invalidated(second) == set()

    purge = client.post("/gateway/admin/cache/purge", json={"pattern": "*settings"}, headers=ADMIN)
    assert purge.get_json()["namespaces"] == ["company_settings", "settings"]
    assert invalidated(first) == invalidated(second) == {"settings", "company_settings"}


def test_admin_purge_for_a_company_that_does_not_exist_is_404_not_500(client):
    # found by schemathesis (bench/openapi_fuzz.py): the audit row's company did not exist
    response = client.post("/gateway/admin/cache/purge", json={"company_id": 37704900}, headers=ADMIN)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["detail"] == "No company with id 37704900."


@pytest.mark.parametrize("body, field", [
    ({"namespace": "calender"}, "namespace"),
    ({"pattern": "zz*"}, "pattern"),
    ({"company_id": "seven"}, "company_id"),
    ({"namespace": "calls", "pattern": "settings*"}, "pattern"),
])
def test_admin_purge_rejects_what_selects_nothing(client, body, field):
    response = client.post("/gateway/admin/cache/purge", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in str(response.get_json())


def test_stale_copy_outlives_invalidation_for_the_fallback(app, tenant_factory):
    tenant, other = tenant_factory(), tenant_factory()
    good = tenant.get("/test/cache/calls-flaky")
    assert good.headers["X-Cache"] == "MISS"
    emit(tenant, "calls.created", name="Renamed")
    app.config["CACHE_TEST_UPSTREAM_DOWN"] = True
    stale = tenant.get("/test/cache/calls-flaky")
    assert stale.status_code == 200
    assert stale.headers["X-Cache"] == "STALE" and "Age" in stale.headers
    assert stale.get_json() == good.get_json()
    # no copy of another company's data, ever
    assert other.get("/test/cache/calls-flaky").status_code == 503
    app.config["CACHE_TEST_UPSTREAM_DOWN"] = False
    fresh = tenant.get("/test/cache/calls-flaky")
    assert fresh.headers["X-Cache"] == "MISS"            # the stale answer was not stored as fresh
    assert fresh.get_json()["name"] == "Renamed"


def test_no_last_good_copy_is_kept_where_no_fallback_can_serve_it(app, tenant, redis_client):
    """A local service with no upstream never falls back: its answers are cached, but no
    stale copy is written for them (one Redis write less per miss)."""
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "MISS"
    assert tenant.get("/test/cache/calls-flaky").headers["X-Cache"] == "MISS"
    kept = [key.decode() for key in redis_client.scan_iter("gw:cache:s:*")]
    assert len(kept) == 1 and kept[0].startswith("gw:cache:s:calls:")
