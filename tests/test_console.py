"""The operations console over HTTP: its login (cookie, CSRF, throttling, logout), each
action with its audit row, and the state endpoint."""
import html
import itertools
import re

import pytest
from sqlalchemy import select

from blueprints.console import auth
from gateway_app.db import Session, utcnow
from gateway_app.extensions import gateway_state
from gateway_app.models import AuditLog, OutboxMessage
from gateway_app.services.metrics_window import SnapshotRing
from tests.conftest import build_app

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_addresses = itertools.count(1)


def fresh_ip():
    """An address of this file's own, so one test's ip budget never meets another's."""
    n = next(_addresses)
    return f"203.0.{n // 250}.{n % 250 + 1}"


def from_ip(ip):
    return {"environ_base": {"REMOTE_ADDR": ip}}


def log_in(client, token=TOKEN, ip=None):
    ip = ip or fresh_ip()
    form = client.get("/gateway/console/login", **from_ip(ip))
    assert form.status_code == 200
    csrf = CSRF.search(form.get_data(as_text=True)).group(1)
    return client.post("/gateway/console/login", data={"token": token, "csrf_token": csrf}, **from_ip(ip))


@pytest.fixture
def console(client):
    """A client logged in to the console; ``console.csrf`` is its session's CSRF token."""
    assert log_in(client).status_code == 303
    page = client.get("/gateway/console")
    assert page.status_code == 200
    client.csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    return client


def act(console, action, confirmed=True, **fields):
    data = {"csrf_token": console.csrf, **fields}
    if confirmed:
        data["confirmed"] = "yes"
    return console.post(f"/gateway/console/actions/{action}", data=data)


def audit_rows(action):
    Session.remove()   # the rows the requests committed, not this session's old view
    return Session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all()


def breaker_state(client, service):
    data = client.get("/gateway/admin/breakers", headers=ADMIN).get_json()["data"]
    return next(row["state"] for row in data if row["service"] == service)


# -- login, session, logout ------------------------------------------------------------------
def test_console_asks_for_a_login_and_the_token_opens_it(client):
    assert client.get("/gateway/console").headers["Location"].endswith("/gateway/console/login")
    logged_in = log_in(client)
    assert logged_in.status_code == 303 and logged_in.headers["Location"].endswith("/gateway/console")
    cookie = next(value for value in logged_in.headers.getlist("Set-Cookie") if value.startswith("gw_console="))
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/gateway/console", f"Max-Age={auth.SESSION_TTL}"):
        assert attribute in cookie
    assert "Secure" not in cookie   # not production: a plain-http local console must work
    page = client.get("/gateway/console")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    for breaker in ("calcom", "retell", "stripe", "sendgrid"):
        assert f'id="breaker-{breaker}"' in html
    assert 'id="service-calls"' in html and "Development mail sink" in html


def test_the_session_cookie_is_secure_in_production(database_url, redis_url, redis_client, built_apps):
    app = built_apps(build_app(database_url, redis_url, SESSION_COOKIE_SECURE=True))
    with app.app_context():
        logged_in = log_in(app.test_client())
    cookie = next(value for value in logged_in.headers.getlist("Set-Cookie") if value.startswith("gw_console="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_wrong_token_is_refused_and_opens_nothing(client):
    refused = log_in(client, token="not-the-admin-token")
    assert refused.status_code == 401 and "Wrong token." in refused.get_data(as_text=True)
    assert not any(value.startswith("gw_console=") for value in refused.headers.getlist("Set-Cookie"))
    assert client.get("/gateway/console").status_code == 303
    assert client.get("/gateway/console/state").status_code == 401


def test_a_login_without_the_forms_csrf_token_is_refused(client):
    ip = fresh_ip()
    client.get("/gateway/console/login", **from_ip(ip))
    missing = client.post("/gateway/console/login", data={"token": TOKEN}, **from_ip(ip))
    forged = client.post("/gateway/console/login", data={"token": TOKEN, "csrf_token": "forged"}, **from_ip(ip))
    assert missing.status_code == 403 and forged.status_code == 403
    assert client.get("/gateway/console").status_code == 303


def test_a_forged_session_cookie_is_no_session(client):
    client.set_cookie(auth.COOKIE, "eyJzaWQiOiJ4In0.forged", path="/gateway/console")
    assert client.get("/gateway/console").status_code == 303
    assert client.get("/gateway/console/state").status_code == 401


def test_wrong_tokens_are_throttled_per_address_like_the_admin_api(client):
    ip = fresh_ip()
    statuses = [log_in(client, token=f"guess-{n}", ip=ip).status_code for n in range(11)]
    assert statuses == [401] * 10 + [429]   # admin_refusals: 10 a minute
    refused = log_in(client, ip=ip)   # the right token: refused too, a guesser learns nothing
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many wrong tokens" in refused.get_data(as_text=True)
    assert log_in(client, ip=fresh_ip()).status_code == 303   # other addresses are unaffected


def test_the_console_and_the_admin_api_share_one_guessing_budget(client):
    ip = fresh_ip()
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert {client.get("/gateway/admin/breakers", headers=wrong, **from_ip(ip)).status_code
            for _ in range(6)} == {401}
    statuses = [log_in(client, token="guess", ip=ip).status_code for _ in range(5)]
    assert statuses == [401] * 4 + [429]   # admin_refusals: 10 a minute, for both
    assert client.get("/gateway/admin/breakers", headers=ADMIN, **from_ip(ip)).status_code == 429


def test_logout_ends_the_session_in_every_worker(console, database_url, redis_url):
    cookie = console.get_cookie(auth.COOKIE, path="/gateway/console").value
    other = build_app(database_url, redis_url)   # another worker on the same Redis
    with other.app_context():
        other_client = other.test_client()
        other_client.set_cookie(auth.COOKIE, cookie, path="/gateway/console")
        assert other_client.get("/gateway/console").status_code == 200
    logged_out = console.post("/gateway/console/logout", data={"csrf_token": console.csrf})
    assert logged_out.status_code == 303 and logged_out.headers["Location"].endswith("/login")
    console.set_cookie(auth.COOKIE, cookie, path="/gateway/console")   # the old cookie, replayed
    assert console.get("/gateway/console").status_code == 303
    with other.app_context():
        assert other_client.get("/gateway/console").status_code == 303
        assert other_client.get("/gateway/console/state").status_code == 401


def test_logout_needs_the_csrf_token(console):
    assert console.post("/gateway/console/logout", data={}).status_code == 403
    assert console.get("/gateway/console").status_code == 200


def test_a_session_expires(console, monkeypatch):
    issued = auth.clock()
    monkeypatch.setattr(auth, "clock", lambda: issued + auth.SESSION_TTL - 5)
    assert console.get("/gateway/console").status_code == 200
    monkeypatch.setattr(auth, "clock", lambda: issued + auth.SESSION_TTL + 5)
    assert console.get("/gateway/console").status_code == 303
    assert console.get("/gateway/console/state").status_code == 401


def test_a_new_admin_token_ends_the_sessions_of_the_old_one(app, console):
    app.config["GATEWAY_ADMIN_TOKEN"] = "a-rotated-admin-token-0123456789abcdef"
    assert console.get("/gateway/console").status_code == 303


def test_the_console_is_disabled_without_an_admin_token(database_url, redis_url, redis_client, built_apps):
    app = built_apps(build_app(database_url, redis_url, GATEWAY_ADMIN_TOKEN=None))
    with app.app_context():
        client = app.test_client()
        assert client.get("/gateway/console").status_code == 404
        assert client.get("/gateway/console/login").status_code == 404
        state = client.get("/gateway/console/state")
        assert state.status_code == 404 and state.mimetype == "application/problem+json"


# -- actions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_an_action_without_the_sessions_csrf_token_is_refused(console, csrf):
    data = {"service": "calcom", "state": "open", "confirmed": "yes"}
    if csrf:
        data["csrf_token"] = csrf
    refused = console.post("/gateway/console/actions/breaker", data=data)
    assert refused.status_code == 403 and "CSRF" in refused.get_data(as_text=True)
    assert breaker_state(console, "calcom") == "closed"
    assert audit_rows("admin.breaker.forced") == []


def test_an_action_without_a_session_is_refused(client):
    refused = client.post("/gateway/console/actions/breaker",
                          data={"service": "calcom", "state": "open", "confirmed": "yes", "csrf_token": "x"})
    assert refused.status_code == 401
    assert breaker_state(client, "calcom") == "closed"


def test_forcing_a_breaker_is_confirmed_then_done_and_audited(console):
    asked = act(console, "breaker", confirmed=False, service="stripe", state="open")
    assert asked.status_code == 200 and "Force the stripe breaker open?" in asked.get_data(as_text=True)
    assert breaker_state(console, "stripe") == "closed"   # nothing done before the confirmation
    done = act(console, "breaker", service="stripe", state="open")
    assert done.status_code == 200 and "The stripe breaker is now open." in done.get_data(as_text=True)
    assert breaker_state(console, "stripe") == "open"
    assert 'data-state="open"' in console.get("/gateway/console").get_data(as_text=True)
    assert act(console, "breaker", service="stripe", state="closed").status_code == 200
    assert breaker_state(console, "stripe") == "closed"
    rows = audit_rows("admin.breaker.forced")
    assert [(row.target_id, row.details["state"], row.details["via"]) for row in rows] == [
        ("stripe", "open", "console"), ("stripe", "closed", "console")]
    assert all(row.ip and row.request_id for row in rows)


def test_forcing_an_unknown_breaker_is_404(console):
    refused = act(console, "breaker", service="paypal", state="open")
    assert refused.status_code == 404
    assert "No circuit breaker named 'paypal'" in html.unescape(refused.get_data(as_text=True))
    assert audit_rows("admin.breaker.forced") == []


def test_purging_a_namespace_empties_it_and_is_audited(console, tenant):
    assert tenant.get("/api/v1/calls").headers["X-Cache"] == "MISS"
    assert tenant.get("/api/v1/calls").headers["X-Cache"].startswith("HIT")
    done = act(console, "purge", namespace="calls", company_id="")
    assert done.status_code == 200 and "Purged: calls." in done.get_data(as_text=True)
    assert tenant.get("/api/v1/calls").headers["X-Cache"] == "MISS"
    [row] = audit_rows("admin.cache.purged")
    assert row.target_id == "calls" and row.details["namespaces"] == ["calls"] and row.details["via"] == "console"


def test_purging_an_unknown_namespace_is_refused(console):
    refused = act(console, "purge", namespace="calender", company_id="")
    assert refused.status_code == 422 and "Unknown namespace" in refused.get_data(as_text=True)
    bad_company = act(console, "purge", namespace="calls", company_id="seven")
    assert bad_company.status_code == 422
    assert audit_rows("admin.cache.purged") == []


def test_resetting_an_address_lets_it_in_again_and_is_audited(console):
    ip = fresh_ip()
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    for _ in range(10):
        console.get("/gateway/admin/breakers", headers=wrong, **from_ip(ip))
    assert console.get("/gateway/admin/breakers", headers=ADMIN, **from_ip(ip)).status_code == 429
    done = act(console, "rate-limit-reset", layer="ip", key=ip)
    assert done.status_code == 200 and "Cleared:" in done.get_data(as_text=True)
    assert console.get("/gateway/admin/breakers", headers=ADMIN, **from_ip(ip)).status_code == 200
    [row] = audit_rows("admin.rate_limit.reset")
    assert row.details["layer"] == "ip" and row.details["key"] == ip and row.details["via"] == "console"


def test_resetting_an_unknown_layer_is_404(console):
    assert act(console, "rate-limit-reset", layer="galaxy", key="1").status_code == 404


def dead_message(kind="email"):
    message = OutboxMessage(kind=kind, payload={"to": "x@example.com"}, status="dead", attempts=8,
                            next_attempt_at=utcnow(), completed_at=utcnow(), last_error="gave up after 8 attempts")
    Session.add(message)
    Session.commit()
    return message.id


def test_retrying_dead_messages_queues_them_again_and_is_audited(app, console):
    first, second = dead_message(), dead_message()
    state = console.get("/gateway/console/state").get_json()
    assert state["outbox"]["dead"] == 2
    assert {row["id"] for row in state["outbox"]["dead_messages"]} == {first, second}
    done = act(console, "outbox-retry", ids=str(first))
    assert done.status_code == 200 and f"Queued again: {first}." in done.get_data(as_text=True)
    Session.remove()
    retried, left = Session.get(OutboxMessage, first), Session.get(OutboxMessage, second)
    assert (retried.status, retried.attempts, retried.completed_at) == ("pending", 0, None)
    assert left.status == "dead"
    assert act(console, "outbox-retry", ids="").status_code == 200   # every dead one
    Session.remove()
    assert Session.get(OutboxMessage, second).status == "pending"
    rows = audit_rows("admin.outbox.retried")
    assert [row.details["ids"] for row in rows] == [[first], [second]]


def test_retrying_a_message_that_is_not_dead_is_404(console):
    refused = act(console, "outbox-retry", ids="999999")
    assert refused.status_code == 404 and "999999" in refused.get_data(as_text=True)
    assert act(console, "outbox-retry", ids="abc").status_code == 422


def test_the_admin_api_retries_dead_messages_too(client):
    message_id = dead_message()
    backlog = client.get("/gateway/admin/outbox", headers=ADMIN).get_json()
    assert backlog["dead"] == 1 and backlog["dead_messages"][0]["id"] == message_id
    retried = client.post("/gateway/admin/outbox/retry", json={"ids": [message_id]}, headers=ADMIN)
    assert retried.status_code == 200 and retried.get_json() == {"retried": [message_id]}
    assert client.post("/gateway/admin/outbox/retry", json={"ids": [message_id]},
                       headers=ADMIN).status_code == 404   # no longer dead
    assert [row.details["via"] for row in audit_rows("admin.outbox.retried")] == ["admin-api"]


def test_the_admin_apis_breaker_force_is_audited_like_the_consoles(client):
    assert client.post("/gateway/admin/breakers/retell", json={"state": "open"}, headers=ADMIN).status_code == 200
    [row] = audit_rows("admin.breaker.forced")
    assert row.target_id == "retell" and row.details == {"state": "open", "via": "admin-api"}


# -- the state endpoint -------------------------------------------------------------------------
def test_the_state_endpoint_needs_a_console_session(client):
    refused = client.get("/gateway/console/state")
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert client.get("/gateway/console/state", headers=ADMIN).status_code == 401   # a session, not the bearer
    assert client.get("/gateway/console/panels").status_code == 401


def test_the_state_endpoint_shows_everything_the_page_does(console, tenant):
    tenant.post("/api/v1/team/members", json={"email": "new.hire@example.com", "name": "New Hire",
                                              "role": "member"})
    state = console.get("/gateway/console/state").get_json()
    assert {row["service"] for row in state["breakers"]["data"]} >= {"calcom", "retell", "stripe", "sendgrid"}
    services = {row["service"]: row for row in state["services"]["data"]}
    assert services["calls"]["mode"] == "local" and services["calls"]["instances"] == []
    assert state["dependencies"]["checks"]["database"] == "ok"
    assert state["dependencies"]["checks"]["redis"] == "ok" and state["dependencies"]["failed"] == []
    assert state["outbox"]["dead"] == 0
    assert state["dev_mail"]["sink_enabled"] is True
    assert [mail["to"] for mail in state["dev_mail"]["messages"]] == [["new.hire@example.com"]]
    assert "calls" in state["cache_namespaces"] and "ip" in state["rate_limit_layers"]


def test_rates_and_latency_come_from_snapshots_of_the_counters(app, console, tenant):
    now = [1_000_000.0]
    gateway_state(app).components["console_snapshots"] = SnapshotRing(clock=lambda: now[0])
    first = console.get("/gateway/console/state").get_json()["metrics"]
    assert first["series"] == {} and first["window_seconds"] == 0
    for _ in range(7):
        assert tenant.get("/api/v1/calls").status_code == 200
    assert tenant.get("/health").status_code == 200   # not a service's request: not in "calls"
    now[0] += 10
    metrics = console.get("/gateway/console/state").get_json()["metrics"]
    [point] = metrics["series"]["calls"]
    assert point["rate"] == 0.7 and point["error_rate"] == 0
    assert 0 < point["p50_ms"] <= point["p99_ms"]
    calls = [row for row in metrics["cache"] if row["namespace"] == "calls"]
    assert sum(row["window_lookups"] for row in calls) == 7
    now[0] += 5   # too soon for another snapshot: the same figures
    assert console.get("/gateway/console/state").get_json()["metrics"]["series"]["calls"] == [point]
    page = console.get("/gateway/console").get_data(as_text=True)
    assert 'id="traffic-calls"' in page and "<circle" in page   # one interval: one point
    now[0] += 5   # 10 s after the last snapshot
    for _ in range(3):
        tenant.get("/api/v1/calls")
    [_, later] = console.get("/gateway/console/state").get_json()["metrics"]["series"]["calls"]
    assert later["rate"] == 0.3
    assert "<polyline" in console.get("/gateway/console").get_data(as_text=True)


def test_the_console_assets_are_served_by_the_gateway(client):
    script = client.get("/gateway/console/assets/console.js")
    style = client.get("/gateway/console/assets/console.css")
    assert script.status_code == 200 and "fetch(\"/gateway/console/panels\"" in script.get_data(as_text=True)
    assert style.status_code == 200 and style.mimetype == "text/css"
    assert client.get("/gateway/console/assets/nothing.js").status_code == 404


def test_a_section_that_cannot_be_read_says_so_and_the_others_still_show(console, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from blueprints.console import state as console_state_module  # the module, not a view

    def database_down():
        raise OperationalError("SELECT status FROM outbox", {}, ConnectionRefusedError("down"))
    monkeypatch.setattr(console_state_module.operations, "outbox_summary", database_down)
    state = console.get("/gateway/console/state").get_json()
    assert state["outbox"] == {"error": "unavailable: OperationalError"}
    assert state["breakers"]["data"] and state["services"]["data"]
    page = console.get("/gateway/console")
    assert page.status_code == 200 and "unavailable: OperationalError" in page.get_data(as_text=True)
