"""Billing through HTTP: Stripe via its breaker, the local mirror, plan usage, the 503 fallback."""
import datetime as dt
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from sqlalchemy import func, select

from gateway_app.db import Session
from gateway_app.models import Call, Company, Invoice, Payment
from tests.conftest import TEST_NOW, sign_up
from tests.support.queries import counted_queries
from tests.support.reads import BOTH, FRESH, get

STRIPE = "https://api.stripe.com/v1"
ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
NOW = TEST_NOW   # the business clock of the tests' apps: this month's usage is its month


def stripe_invoice(number, created):
    return {"id": f"in_{number:04d}", "object": "invoice", "number": f"INV-{number:04d}",
            "status": "paid", "currency": "usd", "amount_due": 4900, "amount_paid": 4900,
            "period_start": created - 2592000, "period_end": created, "created": created,
            "customer": "cus_Abc123", "hosted_invoice_url": f"https://invoice.stripe.com/i/{number}"}


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def stripe_tenant(provider_client):
    tenant = sign_up(provider_client)
    company = Session.get(Company, tenant.company["id"])
    company.stripe_customer_id = "cus_Abc123"
    Session.commit()
    return tenant


def add_mirror_rows(company_id, count):
    for number in range(count):
        created = NOW - dt.timedelta(days=count - number)
        invoice = Invoice(company_id=company_id, stripe_invoice_id=f"in_local_{number}", number=f"L-{number}",
                          status="paid", amount_due=900, amount_paid=900, created_at=created)
        Session.add(invoice)
        Session.flush()
        Session.add(Payment(company_id=company_id, stripe_payment_id=f"pi_local_{number}",
                            invoice_id=invoice.id, amount=900, status="succeeded", created_at=created))
    Session.commit()


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_invoices_and_payments_come_from_the_mirror_when_stripe_is_not_configured(tenant, tenant_factory, mocked):
    add_mirror_rows(tenant.company["id"], 3)
    other_tenant = tenant_factory()
    Session.add(Invoice(company_id=other_tenant.company["id"], stripe_invoice_id="in_theirs",
                        status="open"))
    Session.commit()

    first = tenant.get("/api/v1/billing/invoices?limit=2")
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["source"] == "local" and "not configured" in body["note"]
    assert [row["id"] for row in body["data"]] == ["in_local_2", "in_local_1"]
    second = tenant.get(f"/api/v1/billing/invoices?limit=2&cursor={body['next_cursor']}").get_json()
    assert [row["id"] for row in second["data"]] == ["in_local_0"]
    assert second["next_cursor"] is None

    payments = tenant.get("/api/v1/billing/payments").get_json()
    assert payments["source"] == "local"
    assert [row["id"] for row in payments["data"]] == ["pi_local_2", "pi_local_1", "pi_local_0"]
    assert len(mocked.calls) == 0


@BOTH
def test_mirror_lists_are_one_statement_each_with_or_without_a_cursor(app, tenant, tenant_factory):
    add_mirror_rows(tenant.company["id"], 3)
    theirs = tenant_factory()
    get(theirs, "/api/v1/billing/invoices")   # warms the principals: the counts are the views'
    get(tenant, "/api/v1/billing/invoices")

    answers = {}
    for path in ("/api/v1/billing/invoices?limit=1", "/api/v1/billing/invoices?limit=1&cursor=in_local_2",
                 "/api/v1/billing/payments?limit=1", "/api/v1/billing/payments?limit=1&cursor=pi_local_2",
                 "/api/v1/billing/invoices?cursor=in_nope"):
        with counted_queries(app) as statements:
            answers[path] = tenant.get(path, headers=FRESH)
        assert len(statements) == 1, (path, statements)
    with counted_queries(app) as statements:
        empty = get(theirs, "/api/v1/billing/payments").get_json()
    assert len(statements) == 1
    assert empty == {"data": [], "next_cursor": None, "source": "local", "note": empty["note"]}
    assert [answer.status_code for answer in answers.values()] == [200, 200, 200, 200, 422]
    assert [answer.get_json()["next_cursor"] for answer in list(answers.values())[:4]] == \
        ["in_local_2", "in_local_1", "pi_local_2", "pi_local_1"]


@BOTH
def test_mirror_items_show_their_records_and_payments_their_invoices_stripe_id(tenant):
    company_id = tenant.company["id"]
    created = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc)
    invoice = Invoice(company_id=company_id, stripe_invoice_id="in_full", number=None, status="open",
                      currency="eur", amount_due=1250, amount_paid=0, period_start=created,
                      period_end=None, hosted_invoice_url="https://invoice.stripe.com/i/full",
                      created_at=created)
    Session.add(invoice)
    Session.flush()
    Session.add_all([Payment(company_id=company_id, stripe_payment_id="pi_paid", invoice_id=invoice.id,
                             amount=1250, currency="eur", status="succeeded", created_at=created),
                     Payment(company_id=company_id, stripe_payment_id="pi_alone", amount=5, status="failed",
                             created_at=created + dt.timedelta(seconds=1))])
    Session.commit()

    assert get(tenant, "/api/v1/billing/invoices").get_json()["data"] == [{
        "id": "in_full", "number": None, "status": "open", "currency": "eur", "amount_due": 1250,
        "amount_paid": 0, "period_start": "2026-03-01T09:30:00+00:00", "period_end": None,
        "hosted_invoice_url": "https://invoice.stripe.com/i/full", "created_at": "2026-03-01T09:30:00+00:00"}]
    assert get(tenant, "/api/v1/billing/payments").get_json()["data"] == [
        {"id": "pi_alone", "amount": 5, "currency": "usd", "status": "failed", "invoice": None,
         "created_at": "2026-03-01T09:30:01+00:00"},
        {"id": "pi_paid", "amount": 1250, "currency": "eur", "status": "succeeded", "invoice": "in_full",
         "created_at": "2026-03-01T09:30:00+00:00"}]


@BOTH
@pytest.mark.parametrize("kind", ["invoices", "payments"])
def test_a_cursor_naming_no_record_of_the_company_is_refused(tenant, tenant_factory, kind):
    add_mirror_rows(tenant.company["id"], 2)
    other = tenant_factory()
    add_mirror_rows_named(other.company["id"], "theirs")
    own_last = {"invoices": "in_local_0", "payments": "pi_local_0"}[kind]
    for cursor in ("in_nope", "pi_nope", f"{own_last[:3]}theirs"):
        refused = get(tenant, f"/api/v1/billing/{kind}", cursor=cursor)
        assert refused.status_code == 422, cursor
        assert refused.get_json()["errors"] == {"cursor": ["Not a valid cursor."]}
    # the oldest record's id is a cursor, after which nothing follows
    last = get(tenant, f"/api/v1/billing/{kind}", cursor=own_last).get_json()
    assert last["data"] == [] and last["next_cursor"] is None


def add_mirror_rows_named(company_id, name):
    invoice = Invoice(company_id=company_id, stripe_invoice_id=f"in_{name}", status="paid")
    Session.add(invoice)
    Session.flush()
    Session.add(Payment(company_id=company_id, stripe_payment_id=f"pi_{name}", invoice_id=invoice.id,
                        amount=1, status="succeeded"))
    Session.commit()


def test_a_customer_linked_in_integrations_only_is_asked_at_stripe(provider_client, mocked):
    tenant = sign_up(provider_client)
    company = Session.get(Company, tenant.company["id"])
    company.integrations = {"stripe_customer_id": "cus_Legacy1"}
    Session.commit()
    add_mirror_rows(company.id, 1)
    mocked.get(f"{STRIPE}/invoices", json={"object": "list", "has_more": False,
                                           "data": [stripe_invoice(1, int(NOW.timestamp()))]})
    body = tenant.get("/api/v1/billing/invoices?cursor=in_not_mirrored").get_json()
    assert body["source"] == "stripe" and [row["id"] for row in body["data"]] == ["in_0001"]
    assert parse_qs(urlparse(mocked.calls[0].request.url).query) == {
        "customer": ["cus_Legacy1"], "limit": ["25"], "starting_after": ["in_not_mirrored"]}


def test_invoices_come_from_stripe_with_starting_after_paging(stripe_tenant, mocked):
    created = int(NOW.timestamp())
    mocked.get(f"{STRIPE}/invoices", json={
        "object": "list", "url": "/v1/invoices", "has_more": True,
        "data": [stripe_invoice(2, created), stripe_invoice(1, created - 86400)]})
    response = stripe_tenant.get("/api/v1/billing/invoices?limit=2",
                                 headers={"X-Request-ID": "client-request-0001"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["source"] == "stripe"
    assert body["data"][0]["id"] == "in_0002" and body["data"][0]["amount_paid"] == 4900
    assert body["next_cursor"] == "in_0001"
    upstream = mocked.calls[0].request
    assert parse_qs(urlparse(upstream.url).query) == {"customer": ["cus_Abc123"], "limit": ["2"]}
    assert upstream.headers["X-Request-ID"] == "client-request-0001"
    assert upstream.headers["Authorization"] == "Bearer sk_test_123"

    stripe_tenant.get(f"/api/v1/billing/invoices?limit=2&cursor={body['next_cursor']}")
    assert parse_qs(urlparse(mocked.calls[1].request.url).query)["starting_after"] == ["in_0001"]


def test_payments_come_from_stripe_payment_intents(stripe_tenant, mocked):
    mocked.get(f"{STRIPE}/payment_intents", json={"object": "list", "has_more": False, "data": [
        {"id": "pi_3Abc", "object": "payment_intent", "amount": 4900, "currency": "usd",
         "status": "succeeded", "invoice": "in_0002", "created": int(NOW.timestamp())}]})
    body = stripe_tenant.get("/api/v1/billing/payments").get_json()
    assert body["source"] == "stripe"
    assert body["data"] == [{"id": "pi_3Abc", "amount": 4900, "currency": "usd", "status": "succeeded",
                             "invoice": "in_0002", "created_at": body["data"][0]["created_at"]}]
    assert body["next_cursor"] is None


def test_company_without_a_stripe_customer_is_served_from_the_mirror(provider_client, mocked):
    tenant = sign_up(provider_client)
    add_mirror_rows(tenant.company["id"], 1)
    body = tenant.get("/api/v1/billing/invoices").get_json()
    assert body["source"] == "local" and [row["id"] for row in body["data"]] == ["in_local_0"]
    assert len(mocked.calls) == 0


def assert_upstream_503(response, service="stripe"):
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["service"] == service
    assert problem["status"] == 503 and problem["request_id"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and problem["retry_after"] == retry_after
    return problem


def test_open_stripe_breaker_answers_503_with_service_and_retry_after(stripe_tenant, provider_client, mocked):
    forced = provider_client.post("/gateway/admin/breakers/stripe", json={"state": "open"}, headers=ADMIN)
    assert forced.status_code == 200 and forced.get_json()["state"] == "open"
    for path in ("/api/v1/billing/invoices", "/api/v1/billing/payments"):
        problem = assert_upstream_503(stripe_tenant.get(path))
        assert "circuit breaker is open" in problem["detail"]
    assert len(mocked.calls) == 0               # open: Stripe is not called at all
    # usage is computed locally and does not depend on Stripe
    assert stripe_tenant.get("/api/v1/billing/usage").status_code == 200


def test_stripe_failing_through_http_opens_the_breaker(stripe_tenant, mocked):
    mocked.get(f"{STRIPE}/invoices", status=500, json={"error": {"type": "api_error"}})
    for _ in range(4):
        problem = assert_upstream_503(stripe_tenant.get("/api/v1/billing/invoices"))
        assert "call failed" in problem["detail"]
    assert len(mocked.calls) == 4
    assert_upstream_503(stripe_tenant.get("/api/v1/billing/invoices"))     # the 5th trips it
    assert_upstream_503(stripe_tenant.get("/api/v1/billing/invoices"))
    assert len(mocked.calls) == 5
    breakers = stripe_tenant.client.get("/gateway/admin/breakers", headers=ADMIN).get_json()["data"]
    stripe = next(row for row in breakers if row["service"] == "stripe")
    assert stripe["state"] == "open" and stripe["failures_in_window"] == 5


def test_stripe_4xx_is_a_502_and_does_not_trip(stripe_tenant, mocked):
    mocked.get(f"{STRIPE}/invoices", status=400, json={"error": {"type": "invalid_request_error",
                                                                  "message": "No such customer"}})
    for _ in range(6):
        response = stripe_tenant.get("/api/v1/billing/invoices")
        assert response.status_code == 502
        assert response.get_json()["upstream_status"] == 400
    assert stripe_tenant.get("/api/v1/billing/invoices").status_code == 502   # still closed


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_usage_counts_this_months_calls_against_the_plan(tenant):
    company_id = tenant.company["id"]
    this_month = NOW.replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    for seconds in (61, 120, 30):
        Session.add(Call(company_id=company_id, direction="inbound", status="answered",
                         started_at=this_month, duration_seconds=seconds))
    Session.add(Call(company_id=company_id, direction="inbound", status="answered",
                     started_at=this_month - dt.timedelta(days=20), duration_seconds=600))
    Session.commit()
    body = tenant.get("/api/v1/billing/usage").get_json()
    assert body["calls"] == 3
    assert body["minutes"] == 4                  # 211 s rounded up
    assert body["plan_minutes"] == 500 and body["remaining_minutes"] == 496
    assert body["period_start"].startswith(NOW.strftime("%Y-%m-01"))


def test_billing_needs_a_manager(tenant, client):
    assert client.get("/api/v1/billing/invoices").status_code == 401


def test_open_breaker_serves_the_last_good_copy_as_stale(stripe_tenant, provider_client, mocked):
    mocked.get(f"{STRIPE}/invoices", json={"object": "list", "has_more": False,
                                           "data": [stripe_invoice(1, int(NOW.timestamp()))]})
    fresh = stripe_tenant.get("/api/v1/billing/invoices")
    assert fresh.status_code == 200
    provider_client.post("/gateway/admin/breakers/stripe", json={"state": "open"}, headers=ADMIN)
    stale = stripe_tenant.get("/api/v1/billing/invoices", headers={"Cache-Control": "no-cache"})
    assert stale.status_code == 200
    assert stale.headers["X-Cache"] == "STALE"
    assert stale.get_json()["data"] == fresh.get_json()["data"]
    # no copy for payments was ever stored: 503
    assert_upstream_503(stripe_tenant.get("/api/v1/billing/payments"))


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_settled_usage_is_reported_to_stripe_once_per_hour(stripe_tenant, mocked):
    from gateway_app import outbox
    from gateway_app.integrations.usage_reporting import report_due_usage
    from gateway_app.models import UsageRecord
    company = Session.get(Company, stripe_tenant.company["id"])
    company.created_at = NOW - dt.timedelta(days=40)   # reported from the month's start on
    hour = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)   # the month's first
    for offset, seconds in ((5, 90), (20, 30), (70, 600)):     # 2 + 1 min, then 10 min an hour later
        Session.add(Call(company_id=company.id, direction="inbound", status="answered",
                         started_at=hour + dt.timedelta(minutes=offset), duration_seconds=seconds))
    Session.commit()
    mocked.post(f"{STRIPE}/billing/meter_events", json={"object": "billing.meter_event"})
    now = hour + dt.timedelta(hours=3, minutes=10)             # hours 0 and 1 have settled
    assert report_due_usage(now) == 2
    assert report_due_usage(now) == 0                           # nothing recorded twice
    assert outbox.deliver_due() == {"done": 2}
    sent = [parse_qs(call.request.body) for call in mocked.calls]
    assert [body["payload[value]"] for body in sent] == [["2"], ["10"]]
    assert {body["payload[stripe_customer_id]"][0] for body in sent} == {"cus_Abc123"}
    identifiers = [body["identifier"][0] for body in sent]
    assert identifiers == [f"gw-usage-{company.id}-{hour:%Y%m%dT%H}",
                           f"gw-usage-{company.id}-{hour + dt.timedelta(hours=1):%Y%m%dT%H}"]
    assert [call.request.headers["Idempotency-Key"] for call in mocked.calls] == identifiers
    assert Session.scalar(select(func.count()).select_from(UsageRecord)
                          .where(UsageRecord.reported_at.is_not(None))) == 2
    assert stripe_tenant.get("/api/v1/billing/usage").get_json()["reported_minutes"] == 12
