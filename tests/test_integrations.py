"""Provider clients speak each provider's real API: headers, versions, encoding, keys,
retries only where safe, and the breaker's view of 4xx / 5xx / timeouts."""
import datetime as dt
import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from gateway_app.breakers import breaker_for
from gateway_app.integrations import client
from gateway_app.integrations.http import NotConfigured, ProviderRejected, UpstreamUnavailable
from tests.conftest import TEST_NOW

CAL = "https://api.cal.com/v2"
RETELL = "https://api.retellai.com"
STRIPE = "https://api.stripe.com/v1"
SENDGRID = "https://api.sendgrid.com"
START = TEST_NOW + dt.timedelta(days=1, hours=3)   # a booking's start, as Cal.com writes it
START_TEXT = START.strftime("%Y-%m-%dT%H:%M:%S.000Z")
END_TEXT = (START + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

CAL_BOOKING = {"id": 4242, "uid": "bk_9f8e7d", "title": "Consultation", "status": "accepted",
               "start": START_TEXT, "end": END_TEXT,
               "eventTypeId": 77, "attendees": [{"name": "Ada", "email": "ada@example.com",
                                                  "timeZone": "UTC"}],
               "metadata": {"gateway_reference": "gw-appointment-1"}}


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_calcom_create_booking_sends_version_key_and_request_id(provider_app, mocked):
    mocked.post(f"{CAL}/bookings", json={"status": "success", "data": CAL_BOOKING}, status=201)
    start = START
    with provider_app.test_request_context("/"):
        from flask import g
        from gateway_app.context import RequestContext
        g.gateway = RequestContext(request_id="req-abc-12345")
        booking = client("calcom").create_booking(
            77, start, {"name": "Ada", "email": "ada@example.com", "timeZone": "UTC"},
            {"gateway_reference": "gw-appointment-1"})
    assert booking["uid"] == "bk_9f8e7d"
    sent = mocked.calls[0].request
    assert sent.headers["cal-api-version"] == "2026-02-25"
    assert sent.headers["Authorization"] == "Bearer cal_live_test"
    assert sent.headers["X-Request-ID"] == "req-abc-12345"
    assert json.loads(sent.body) == {
        "start": START_TEXT, "eventTypeId": 77,
        "attendee": {"name": "Ada", "email": "ada@example.com", "timeZone": "UTC"},
        "metadata": {"gateway_reference": "gw-appointment-1"}}


def test_calcom_find_booking_uses_the_list_version_and_matches_our_reference(provider_app, mocked):
    other = dict(CAL_BOOKING, uid="bk_other", metadata={"gateway_reference": "gw-appointment-9"})
    mocked.get(f"{CAL}/bookings", json={"status": "success", "data": [other, CAL_BOOKING]})
    start = START
    found = client("calcom").find_booking(77, start, start + dt.timedelta(minutes=30),
                                          "gw-appointment-1")
    assert found["uid"] == "bk_9f8e7d"
    sent = mocked.calls[0].request
    assert sent.headers["cal-api-version"] == "2026-05-01"
    query = parse_qs(urlparse(sent.url).query)
    assert query["eventTypeId"] == ["77"] and query["afterStart"] == [START_TEXT]


def test_calcom_booking_post_is_never_retried(provider_app, mocked):
    mocked.post(f"{CAL}/bookings", json={"status": "error"}, status=503)
    with pytest.raises(UpstreamUnavailable) as raised:
        client("calcom").create_booking(77, START,
                                        {"name": "Ada"}, {})
    assert raised.value.service == "calcom"
    assert len(mocked.calls) == 1              # a repeated booking POST could book twice
    assert breaker_for("calcom").fail_counter == 1


def test_retell_endpoints_and_idempotency_key(provider_app, mocked):
    mocked.get(f"{RETELL}/v2/get-call/call_abc", json={
        "call_id": "call_abc", "call_status": "ended", "start_timestamp": 1700000000000,
        "end_timestamp": 1700000090000, "transcript": "Agent: Hello"})
    mocked.post(f"{RETELL}/v3/list-calls", json=[{"call_id": "call_abc", "call_status": "ended"}])
    mocked.post(f"{RETELL}/v2/create-phone-call", json={"call_id": "call_new", "call_status": "registered"},
                status=201)
    retell = client("retell")
    assert retell.get_call("call_abc")["transcript"] == "Agent: Hello"
    assert retell.list_calls({"agent_id": ["agent_1"]}, limit=10)[0]["call_id"] == "call_abc"
    created = retell.create_phone_call("+14155550100", "+14155550199", idempotency_key="appt-7-callback")
    assert created["call_id"] == "call_new"
    list_body = json.loads(mocked.calls[1].request.body)
    assert list_body == {"limit": 10, "sort_order": "descending",
                         "filter_criteria": {"agent_id": ["agent_1"]}}
    create_body = json.loads(mocked.calls[2].request.body)
    assert create_body["idempotency_key"] == "appt-7-callback"
    assert all(call.request.headers["Authorization"] == "Bearer key_test" for call in mocked.calls)


def test_stripe_form_encoding_idempotency_key_and_retry_of_keyed_post(provider_app, mocked):
    meter_url = f"{STRIPE}/billing/meter_events"
    mocked.post(meter_url, status=503, json={"error": {"type": "api_error"}})
    mocked.post(meter_url, json={"object": "billing.meter_event", "identifier": "usage-1-2026-11"})
    event = client("stripe").create_meter_event("voice_minutes", "cus_123", 42, "usage-1-2026-11",
                                                1_795_000_000)
    assert event["identifier"] == "usage-1-2026-11"
    assert len(mocked.calls) == 2             # keyed POST: safe to repeat, retried once
    first, second = (call.request for call in mocked.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "usage-1-2026-11"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(first.body) == {"event_name": ["voice_minutes"], "identifier": ["usage-1-2026-11"],
                                    "timestamp": ["1795000000"],
                                    "payload[stripe_customer_id]": ["cus_123"],
                                    "payload[value]": ["42"]}
    assert breaker_for("stripe").fail_counter == 0


def test_stripe_list_pagination_uses_starting_after(provider_app, mocked):
    mocked.get(f"{STRIPE}/invoices", json={"object": "list", "data": [], "has_more": False})
    client("stripe").list_invoices("cus_123", limit=10, starting_after="in_1Abc")
    query = parse_qs(urlparse(mocked.calls[0].request.url).query)
    assert query == {"customer": ["cus_123"], "limit": ["10"], "starting_after": ["in_1Abc"]}


def test_sendgrid_send_returns_message_id_and_is_not_retried(provider_app, mocked):
    mocked.post(f"{SENDGRID}/v3/mail/send", status=202, body="",
                headers={"X-Message-Id": "sg-msg-001"})
    message_id = client("sendgrid").send(["ada@example.com"], "Hi", "Hello", "from@example.com",
                                         category="booking_confirmation", html="<p>Hello</p>")
    assert message_id == "sg-msg-001"
    body = json.loads(mocked.calls[0].request.body)
    assert body["personalizations"] == [{"to": [{"email": "ada@example.com"}]}]
    assert body["from"] == {"email": "from@example.com"}
    assert body["content"] == [{"type": "text/plain", "value": "Hello"},
                               {"type": "text/html", "value": "<p>Hello</p>"}]
    assert body["categories"] == ["booking_confirmation"]

    mocked.replace(responses.POST, f"{SENDGRID}/v3/mail/send", status=503)
    with pytest.raises(UpstreamUnavailable):
        client("sendgrid").send(["ada@example.com"], "Hi", "Hello", "from@example.com")
    assert len(mocked.calls) == 2              # the 503 was not retried (no idempotency key)


def test_4xx_is_rejected_without_counting_against_the_breaker(provider_app, mocked):
    mocked.get(f"{RETELL}/v2/get-call/missing", status=404, json={"error_message": "Not found"})
    for _ in range(6):
        with pytest.raises(ProviderRejected) as raised:
            client("retell").get_call("missing")
    assert raised.value.status == 404
    assert breaker_for("retell").current_state == "closed"
    assert breaker_for("retell").fail_counter == 0


def test_timeouts_and_refused_connections_are_failures_that_open_the_breaker(provider_app, mocked):
    mocked.get(f"{RETELL}/v2/get-call/slow", body=requests.ReadTimeout("read timed out"))
    mocked.get(f"{RETELL}/v2/get-call/refused", body=requests.ConnectionError("refused"))
    retell = client("retell")
    for call_id in ("slow", "refused", "slow", "refused"):
        with pytest.raises(UpstreamUnavailable) as raised:
            retell.get_call(call_id)
        assert not raised.value.breaker_open
    with pytest.raises(UpstreamUnavailable) as raised:
        retell.get_call("slow")
    assert raised.value.breaker_open and 55 <= raised.value.retry_after <= 60
    calls_before = len(mocked.calls)
    with pytest.raises(UpstreamUnavailable):
        retell.get_call("slow")
    assert len(mocked.calls) == calls_before   # open: the provider is not called


def test_idempotent_get_is_retried_on_a_gateway_error(provider_app, mocked):
    url = f"{RETELL}/v2/get-call/call_abc"
    mocked.get(url, status=502)
    mocked.get(url, json={"call_id": "call_abc"})
    assert client("retell").get_call("call_abc") == {"call_id": "call_abc"}
    assert len(mocked.calls) == 2


def test_unconfigured_integration_raises_not_configured_and_ready_says_so(client, mocked):
    with pytest.raises(NotConfigured):
        from gateway_app.integrations import client as integration_client
        integration_client("stripe").list_invoices("cus_1")
    assert len(mocked.calls) == 0
    ready = client.get("/ready")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert {checks[f"integration:{name}"] for name in ("calcom", "retell", "stripe", "sendgrid")} == \
        {"not configured"}


def test_ready_reports_configured_integrations_and_open_circuits(provider_client):
    breaker_for("sendgrid").open()
    checks = provider_client.get("/ready").get_json()["checks"]
    assert checks["integration:stripe"] == "ok"
    assert checks["integration:sendgrid"] == "circuit open"
