"""POST /webhooks/retell: Retell call events, signed x-retell-signature, through HTTP."""
import datetime as dt

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.models import Call, Customer, WebhookEvent
from tests.conftest import WEBHOOK_NOW, build_app, link_provider_accounts, sign_up
from tests.support.queries import count_rows
from tests.support.races import lookup_that_loses_the_race

AGENT = "agent_3f9d2a"
VECTOR_BODY = b'{"event":"call_ended","call":{"call_id":"call_abc"}}'
VECTOR_HEADER = ("v=1700000000000,"
                 "d=fb932992541381ebdd2551b4dd55d6a99810ff8b08a416839f645d1fffbfec77")
START_MS = int(WEBHOOK_NOW * 1000) - 180_000
END_MS = START_MS + 125_000


def retell_event(event, call_id="call_5b1e7c", agent_id=AGENT, **call_fields):
    """Shaped like Retell's webhook: {event, call: {...}} with the fields Retell sends."""
    call = {"call_type": "phone_call", "call_id": call_id, "agent_id": agent_id,
            "from_number": "+14155550123", "to_number": "+14155550100", "direction": "inbound",
            "call_status": "ongoing", "metadata": {}, "retell_llm_dynamic_variables": {},
            "start_timestamp": START_MS, "opt_out_sensitive_data_storage": False}
    if event in ("call_ended", "call_analyzed"):
        call.update(call_status="ended", end_timestamp=END_MS, disconnection_reason="user_hangup",
                    transcript="Agent: Thanks for calling.\nUser: I'd like a cleaning on Friday.",
                    transcript_object=[{"role": "agent", "content": "Thanks for calling.", "words": []}])
    if event == "call_analyzed":
        call["call_analysis"] = {"call_summary": "Caller booked a cleaning for Friday.",
                                 "in_voicemail": False, "user_sentiment": "Positive",
                                 "call_successful": True,
                                 "custom_analysis_data": {"outcome": "booked"}}
    call.update(call_fields)
    return {"event": event, "call": call}


@pytest.fixture
def new_company(webhook_app):
    """A signed-up company whose settings link the given Retell agent."""
    return lambda agent: link_provider_accounts(sign_up(webhook_app.test_client()).company["id"],
                                                retell_agent_id=agent)


@pytest.fixture
def company(new_company):
    return new_company(AGENT)


def test_design_vector_is_accepted_through_http(webhooks):
    response = webhooks.post("/webhooks/retell", VECTOR_BODY, {"x-retell-signature": VECTOR_HEADER})
    assert response.status_code == 200, response.get_json()
    # the vector's call names no agent: verified, then ignored, nothing recorded
    assert response.get_json() == {"status": "ignored"}
    assert count_rows(WebhookEvent) == 0 and count_rows(Call) == 0


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_call_started_creates_the_call_and_its_customer(webhooks, company, heard):
    response = webhooks.retell(retell_event("call_started"))
    assert response.status_code == 200 and response.get_json() == {"status": "processed"}
    call = Session.scalar(select(Call).where(Call.retell_call_id == "call_5b1e7c"))
    assert call.company_id == company.id
    assert (call.direction, call.status, call.from_number) == ("inbound", "ongoing", "+14155550123")
    assert call.started_at == dt.datetime.fromtimestamp(START_MS / 1000, dt.timezone.utc)
    customer = Session.get(Customer, call.customer_id)
    assert (customer.company_id, customer.phone) == (company.id, "+14155550123")
    assert [(e.name, e.company_id) for e in heard] == [
        ("customers.updated", company.id), ("calls.created", company.id)]
    row = Session.scalar(select(WebhookEvent))
    assert (row.provider, row.event_id, row.event_type, row.company_id) == (
        "retell", "call_5b1e7c:call_started", "call_started", company.id)

    again = webhooks.retell(retell_event("call_started"))
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate"}
    assert count_rows(Call) == 1 and count_rows(Customer) == 1 and count_rows(WebhookEvent) == 1
    assert [e.name for e in heard].count("calls.created") == 1


def test_call_ended_and_analyzed_update_the_same_call(webhooks, company, heard):
    assert webhooks.retell(retell_event("call_started")).get_json() == {"status": "processed"}
    assert webhooks.retell(retell_event("call_ended")).get_json() == {"status": "processed"}
    Session.expire_all()
    call = Session.scalar(select(Call))
    assert call.status == "answered" and call.duration_seconds == 125
    assert call.ended_at == dt.datetime.fromtimestamp(END_MS / 1000, dt.timezone.utc)
    assert call.transcript.startswith("Agent: Thanks for calling.")
    assert call.analysis == {"disconnection_reason": "user_hangup"}

    assert webhooks.retell(retell_event("call_analyzed")).get_json() == {"status": "processed"}
    Session.expire_all()
    call = Session.scalar(select(Call))
    assert (call.summary, call.sentiment, call.outcome) == (
        "Caller booked a cleaning for Friday.", "positive", "booked")
    assert call.analysis["call_successful"] is True
    assert call.analysis["custom_analysis_data"] == {"outcome": "booked"}
    assert count_rows(Call) == 1 and count_rows(WebhookEvent) == 3
    assert [e.name for e in heard].count("calls.created") == 1


def test_an_ended_call_arriving_first_creates_the_call_once(webhooks, company):
    assert webhooks.retell(retell_event("call_ended")).get_json() == {"status": "processed"}
    assert webhooks.retell(retell_event("call_started")).get_json() == {"status": "processed"}
    assert count_rows(Call) == 1
    Session.expire_all()
    call = Session.scalar(select(Call))
    assert call.status == "answered" and call.duration_seconds == 125  # not reopened


@pytest.mark.parametrize("reason, call_status, expected", [
    ("voicemail_reached", "ended", "voicemail"),
    ("dial_no_answer", "not_connected", "missed"),
    ("error_llm_websocket_open", "error", "failed"),
    ("call_transfer", "ended", "answered"),
])
def test_disconnection_reason_decides_the_status(webhooks, company, reason, call_status, expected):
    event = retell_event("call_ended", call_status=call_status, disconnection_reason=reason)
    assert webhooks.retell(event).status_code == 200
    call = Session.scalar(select(Call))
    assert call.status == expected
    assert call.outcome == ("transferred" if reason == "call_transfer" else None)


def test_outbound_calls_link_the_callee_and_reuse_known_customers(webhooks, company, new_company):
    other = new_company("agent_other")
    Session.add(Customer(company_id=other.id, name="Someone else's", phone="+14155550199"))
    Session.add(Customer(company_id=company.id, name="Dana", phone="+14155550199"))
    Session.commit()
    event = retell_event("call_started", call_id="call_out", direction="outbound",
                         from_number="+14155550100", to_number="+14155550199")
    assert webhooks.retell(event).get_json() == {"status": "processed"}
    call = Session.scalar(select(Call))
    assert Session.get(Customer, call.customer_id).name == "Dana"
    assert count_rows(Customer) == 2


def test_a_number_that_is_not_e164_creates_no_customer(webhooks, company):
    event = retell_event("call_started", from_number="anonymous")
    assert webhooks.retell(event).get_json() == {"status": "processed"}
    call = Session.scalar(select(Call))
    assert call.customer_id is None and call.from_number == "anonymous"
    assert count_rows(Customer) == 0


def test_unknown_agent_is_acknowledged_and_applies_once_linked(webhooks, new_company, caplog):
    event = retell_event("call_started", agent_id="agent_nobody")
    caplog.set_level("INFO", logger="gateway.webhooks")
    response = webhooks.retell(event)
    assert response.status_code == 200 and response.get_json() == {"status": "ignored"}
    assert "agent_nobody" in caplog.text
    assert count_rows(Call) == 0 and count_rows(WebhookEvent) == 0
    company = new_company("agent_nobody")
    assert webhooks.retell(event).get_json() == {"status": "processed"}
    assert Session.scalar(select(Call)).company_id == company.id


def test_other_retell_events_are_acknowledged_without_effect(webhooks, company):
    response = webhooks.retell(retell_event("transcript_updated"))
    assert response.get_json() == {"status": "ignored"}
    assert count_rows(Call) == 0 and count_rows(WebhookEvent) == 0


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["request_id"]
    return body


def test_bad_signatures_are_401(webhooks, company):
    from gateway_app.webhooks.signatures import retell_digest
    event = retell_event("call_started")
    assert_problem(webhooks.retell(event, key="key_wrong"), 401)
    assert_problem(webhooks.retell(event, headers={}), 401)
    assert_problem(webhooks.retell(event, headers={"x-retell-signature": "garbage"}), 401)
    body = webhooks.body_of(event)
    version = int(WEBHOOK_NOW * 1000)
    header = f"v={version},d={retell_digest('key_test', body, version)}"
    tampered = body.replace(b"+14155550123", b"+14155550124")
    assert_problem(webhooks.post("/webhooks/retell", tampered, {"x-retell-signature": header}), 401)
    assert count_rows(Call) == 0 and count_rows(WebhookEvent) == 0
    assert webhooks.post("/webhooks/retell", body, {"x-retell-signature": header}).status_code == 200


@pytest.mark.parametrize("skew_seconds", [-301, 301])
def test_stale_or_future_timestamps_are_401(webhooks, company, skew_seconds):
    at_ms = int((WEBHOOK_NOW + skew_seconds) * 1000)
    body = assert_problem(webhooks.retell(retell_event("call_started"), at_ms=at_ms), 401)
    assert "300 s" in body["detail"] and body["provider"] == "retell"
    assert count_rows(Call) == 0


@pytest.mark.parametrize("skew_seconds", [-299, 299])
def test_timestamps_within_five_minutes_are_accepted(webhooks, company, skew_seconds):
    at_ms = int((WEBHOOK_NOW + skew_seconds) * 1000)
    assert webhooks.retell(retell_event("call_started"), at_ms=at_ms).status_code == 200


def test_malformed_json_after_a_valid_signature_is_400(webhooks, company):
    assert_problem(webhooks.retell(b'{"event": "call_started", "call": '), 400)


def test_an_event_without_a_call_id_is_422(webhooks, company):
    event = retell_event("call_started")
    del event["call"]["call_id"]
    body = assert_problem(webhooks.retell(event), 422)
    assert "call_id" in body["errors"]["call"]


def test_without_the_api_key_the_webhook_is_503_not_configured(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url, RETELL_API_KEY=None)
    with app.app_context():
        response = app.test_client().post("/webhooks/retell", data=VECTOR_BODY,
                                          headers={"x-retell-signature": VECTOR_HEADER})
        body = assert_problem(response, 503)
        assert body["title"] == "Not Configured" and "RETELL_API_KEY" in body["detail"]
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def test_webhooks_need_no_user_credential_and_are_exempt_from_user_limits(webhook_app):
    for provider in ("retell", "calcom", "stripe", "sendgrid"):
        view = webhook_app.view_functions[f"webhooks.{provider}_webhook"]
        assert view.gateway_policy == {"public": True, "exempt_limits": True}


# MariaDB only: on SQLite the event's own row takes the database's one write lock before the
# customer lookup, so no other writer can slip in between the lookup and the insert
@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
def test_a_caller_created_concurrently_is_found_not_duplicated(webhook_app, webhooks, company,
                                                              heard, monkeypatch, caplog):
    caplog.set_level("INFO", logger="gateway.webhooks")
    from gateway_app.webhooks import customers
    winner = lookup_that_loses_the_race(monkeypatch, customers, "_first", webhook_app, company.id,
                                        phone="+14155550123")

    response = webhooks.retell(retell_event("call_started"))

    assert response.status_code == 200 and response.get_json() == {"status": "processed"}
    assert count_rows(Customer) == 1
    call = Session.scalar(select(Call).where(Call.retell_call_id == "call_5b1e7c"))
    assert call.customer_id == winner[0]
    # the SAVEPOINT undid only the failed insert: the event row and the call were committed
    assert count_rows(WebhookEvent) == 1 and count_rows(Call) == 1
    assert [e.name for e in heard] == ["calls.created"]
    # found in the same attempt (a locking read past the snapshot), not by redoing the event
    assert "created concurrently" in caplog.text and "conflicted" not in caplog.text
