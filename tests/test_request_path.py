"""The warm request path through HTTP: what a cached principal and an L1 hit cost in Redis
round trips (the principal's versions and the namespace's generations in one MGET), and
that what is kept in the worker keeps every guarantee (invalidation, revocation, token
expiry)."""
import datetime as dt
import time

import pytest
from flask import Blueprint, jsonify

from gateway_app.db import Session
from gateway_app.identity import tokens
from gateway_app.models import User
from gateway_app.pipeline.declarations import gateway_policy
from tests.conftest import build_app
from tests.support.cache_app import register_cache_test_routes
from tests.support.redis_monitor import redis_commands


def register_rate_limited_cached_route(app):
    blp = Blueprint("request_path_test", __name__)

    @blp.get("/test/limited/calls")
    @gateway_policy(cache="calls", service="calls")   # rate limited: exempt_limits is not set
    def limited_calls():
        return jsonify(calls=[{"id": 1}])

    @blp.get("/test/limited/invoices")
    @gateway_policy(service="billing", upstream="stripe")   # a view that calls Stripe
    def limited_invoices():
        return jsonify(invoices=[])

    app.register_blueprint(blp)
    return app


@pytest.fixture
def app(database_url, redis_url, redis_client):
    app = register_rate_limited_cached_route(register_cache_test_routes(
        build_app(database_url, redis_url)))
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


# connection set-up, and the ECHO sentinel sent on redis_commands' own connection
NOT_PER_REQUEST = {"HELLO", "CLIENT", "ECHO"}


def command_names(seen):
    names = [command.split()[0].upper() for command in seen]
    return [name for name in names if name not in NOT_PER_REQUEST]


def warm_credentials(tenant):
    key = tenant.post("/api/v1/settings/api-keys",
                      json={"name": "k", "scopes": ["read"]}).get_json()["key"]
    return {"token": tenant.headers, "api_key": {"X-API-Key": key}}


def versions_and_generations(seen):
    """What each MGET of a warm request reads: the principal's versions (authentication),
    the namespace's generations (caching)."""
    mgets = [command for command in seen if command.upper().startswith("MGET")]
    return [("gw:identity:ver:" in command, "gw:cache:gen:" in command) for command in mgets]


@pytest.mark.parametrize("kind", ["token", "api_key"])
def test_an_l1_hit_with_a_cached_principal_costs_one_small_read(redis_url, tenant, kind):
    headers = warm_credentials(tenant)[kind]
    for _ in range(2):   # warm the principal cache, then the response cache
        tenant.client.get("/test/cache/calls", headers=headers)
    with redis_commands(redis_url) as seen:
        for _ in range(5):
            assert tenant.client.get("/test/cache/calls", headers=headers).headers["X-Cache"] == "HIT-L1"
    assert command_names(seen) == ["MGET"] * 5
    assert versions_and_generations(seen) == [(True, True)] * 5


def test_a_rate_limited_l1_hit_adds_the_limiter_script(redis_url, tenant):
    for _ in range(2):
        tenant.get("/test/limited/calls")
    with redis_commands(redis_url) as seen:
        for _ in range(3):
            response = tenant.get("/test/limited/calls")
            assert response.headers["X-Cache"] == "HIT-L1"
            assert "RateLimit" in response.headers
    assert command_names(seen) == ["MGET", "EVALSHA"] * 3
    assert versions_and_generations(seen) == [(True, True)] * 3


def test_a_provider_breakers_version_rides_in_the_same_read(redis_url, redis_client, tenant):
    """A view calling Stripe: the breaker's version is read in the round trip that
    confirms the principal, and its state only when the version moved (here: another
    worker opening the breaker)."""
    for _ in range(2):
        assert tenant.get("/test/limited/invoices").status_code == 200
    with redis_commands(redis_url) as seen:
        for _ in range(3):
            assert tenant.get("/test/limited/invoices").status_code == 200
    assert command_names(seen) == ["MGET", "EVALSHA"] * 3
    assert all("gateway:breaker:{stripe}:version" in command for command in seen
               if command.upper().startswith("MGET"))
    # as another worker opening the breaker writes it
    redis_client.set("gateway:breaker:{stripe}:state", "open")
    redis_client.set("gateway:breaker:{stripe}:opened_at", repr(time.time()))
    redis_client.incr("gateway:breaker:{stripe}:version")
    refused = tenant.get("/test/limited/invoices")
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["service"] == "stripe"


def test_a_principal_read_from_the_database_leaves_caching_its_own_read(redis_url, tenant):
    tenant.get("/test/cache/calls")
    fresh = warm_credentials(tenant)["api_key"]   # a new key: not in the principal cache yet
    with redis_commands(redis_url) as seen:
        assert tenant.client.get("/test/cache/calls", headers=fresh).headers["X-Cache"] == "HIT-L1"
    assert versions_and_generations(seen) == [(True, False), (False, True)]


def test_generation_tokens_missing_from_redis_are_created_not_read_ahead(redis_url, redis_client, tenant):
    tenant.get("/test/cache/calls")
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
    # as after a Redis restart: the tokens are gone, so the cached entry must not be served
    redis_client.delete(f"gw:cache:gen:{{c{tenant.company['id']}}}:calls")
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "MISS"
    assert redis_client.get(f"gw:cache:gen:{{c{tenant.company['id']}}}:calls") is not None
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"


def test_an_event_invalidates_an_entry_served_from_l1(tenant):
    tenant.get("/test/cache/calls")
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
    tenant.post("/test/cache/events", json={"event": "calls.updated", "name": "Renamed"})
    fresh = tenant.get("/test/cache/calls")
    assert fresh.headers["X-Cache"] == "MISS"
    assert fresh.get_json()["name"] == "Renamed"


def test_invalidations_this_worker_owes_redis_are_written_before_its_next_read(app, tenant):
    first = tenant.get("/test/cache/calls")
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"
    generations = app.extensions["gateway"].pipeline.stage("caching").tiers.generations
    # as when Redis was down during an invalidation: the bump waits for the next read
    generations.defer([f"gw:cache:gen:{{c{tenant.company['id']}}}:calls"])
    replayed = tenant.get("/test/cache/calls")
    assert replayed.headers["X-Cache"] == "MISS"
    assert replayed.get_json()["run"] != first.get_json()["run"]
    assert not generations.pending
    assert tenant.get("/test/cache/calls").headers["X-Cache"] == "HIT-L1"


def test_disabling_a_user_applies_to_the_next_request_of_a_verified_token(app, tenant):
    assert tenant.get("/api/v1/settings/profile").status_code == 200
    identity = app.extensions["gateway"].identity
    user = Session.get(User, tenant.user["id"])
    user.status = "disabled"
    Session.commit()
    identity.user_changed(user.company_id, user.id)
    assert tenant.get("/api/v1/settings/profile").status_code == 401


def test_a_token_is_verified_once_then_served_from_the_verified_claims(tenant, monkeypatch):
    decoded = []
    original = tokens.decode_access_token

    def counting(*args):
        decoded.append(args[-1])
        return original(*args)

    monkeypatch.setattr(tokens, "decode_access_token", counting)
    for _ in range(3):
        assert tenant.get("/api/v1/settings/profile").status_code == 200
    assert decoded == [tenant.token]
    forged = tenant.token[:-2] + ("AA" if not tenant.token.endswith("AA") else "BB")
    assert tenant.client.get("/api/v1/settings/profile",
                             headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_verified_token_is_refused_once_it_expires(app, tenant):
    config = app.extensions["gateway"].policy["authentication"]
    user = Session.get(User, tenant.user["id"])
    # issued so that it expires at a whole second (a token's instants are whole seconds)
    # one to two seconds from now
    expires = int(time.time()) + 2
    issued = dt.datetime.fromtimestamp(expires - config["access_token_ttl"], dt.timezone.utc)
    token = tokens.issue_access_token(app.config["SECRET_KEY"], config, user, now=issued)
    headers = {"Authorization": f"Bearer {token}"}
    assert tenant.client.get("/api/v1/settings/profile", headers=headers).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    expired = tenant.client.get("/api/v1/settings/profile", headers=headers)
    assert expired.status_code == 401
    assert expired.get_json()["detail"] == "The access token is invalid or expired."


def test_verified_tokens_are_bounded_least_recently_used_first():
    verified = tokens.VerifiedTokens("s" * 40, {"issuer": "i", "audience": "a"}, max_entries=2)
    far = int(time.time()) + 600
    verified.entries.update({"a": {"exp": far}, "b": {"exp": far}})
    assert verified.claims("a") == {"exp": far}         # "a" is now the most recent
    with pytest.raises(tokens.TokenError):
        verified.claims("not-a-token")                  # refused tokens are never kept
    user = type("U", (), {"id": 1, "company_id": 1, "credential_version": 0})()
    token = tokens.issue_access_token("s" * 40, {"issuer": "i", "audience": "a",
                                                 "access_token_ttl": 60}, user)
    verified.claims(token)
    assert list(verified.entries) == ["a", token]
