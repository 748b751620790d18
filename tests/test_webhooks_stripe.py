"""POST /webhooks/stripe: Stripe events, signed Stripe-Signature, through HTTP."""
import itertools
import re

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.models import AuditLog, Company, Invoice, Payment, WebhookEvent
from gateway_app.webhooks.signatures import stripe_digest
from tests.conftest import WEBHOOK_NOW, build_app, link_provider_accounts, sign_up
from tests.support.queries import count_rows

VECTOR_BODY = b'{"event":"call_ended","call":{"call_id":"call_abc"}}'
VECTOR_HEADER = "t=1700000000,v1=37355922de351709d176c5157e85fc7d22bb5eb41f23f1a8bab5e702e89f707c"
CUSTOMER = "cus_P9xQ2hY7sKd1"
_ids = itertools.count(1)


def stripe_event(event_type, obj, event_id=None):
    """Shaped like a Stripe Event object."""
    return {"id": event_id or f"evt_1OQx{next(_ids):08d}", "object": "event",
            "api_version": "2024-06-20", "created": int(WEBHOOK_NOW), "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": event_type, "data": {"object": obj}}


def invoice(status, amount_paid=0, customer=CUSTOMER, invoice_id="in_1OQxInv0001"):
    return {"id": invoice_id, "object": "invoice", "account_country": "US",
            "amount_due": 4900, "amount_paid": amount_paid, "amount_remaining": 4900 - amount_paid,
            "billing_reason": "subscription_cycle", "currency": "usd", "customer": customer,
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1N/test_YWNjdF8x",
            "number": "9C1D2E3F-0001" if status != "draft" else None,
            "paid": status == "paid", "period_start": 1697408000, "period_end": 1700000000,
            "status": status, "subscription": "sub_1OQxSub0001",
            "lines": {"object": "list", "data": [], "has_more": False}}


def payment_intent(status="succeeded", customer=CUSTOMER):
    return {"id": "pi_3OQxPay0001", "object": "payment_intent", "amount": 4900,
            "amount_received": 4900 if status == "succeeded" else 0, "currency": "usd",
            "customer": customer, "invoice": "in_1OQxInv0001", "status": status,
            "latest_charge": "ch_3OQxChg0001", "payment_method_types": ["card"]}


def charge(customer=CUSTOMER):
    return {"id": "ch_3OQxChg0001", "object": "charge", "amount": 4900, "amount_captured": 4900,
            "currency": "usd", "customer": customer, "invoice": "in_1OQxInv0001",
            "payment_intent": "pi_3OQxPay0001", "paid": True, "status": "succeeded"}


def subscription(status="active", metadata=None, lookup_key=None, customer=CUSTOMER):
    return {"id": "sub_1OQxSub0001", "object": "subscription", "customer": customer,
            "status": status, "metadata": metadata or {}, "cancel_at_period_end": False,
            "current_period_start": 1697408000, "current_period_end": 1700000000,
            "items": {"object": "list", "data": [{
                "id": "si_P9", "object": "subscription_item", "quantity": 1,
                "price": {"id": "price_1OQx", "object": "price", "currency": "usd",
                          "lookup_key": lookup_key, "metadata": {}, "product": "prod_P9",
                          "recurring": {"interval": "month"}, "unit_amount": 4900}}]}}


@pytest.fixture
def company(webhook_app):
    tenant = sign_up(webhook_app.test_client())
    return link_provider_accounts(tenant.company["id"], stripe_customer_id=CUSTOMER)


def tier_of(company_id):
    Session.expire_all()
    return Session.get(Company, company_id).tier


def test_design_vector_signature_is_accepted_through_http(webhooks):
    response = webhooks.post("/webhooks/stripe", VECTOR_BODY, {"Stripe-Signature": VECTOR_HEADER})
    # verified (not 401), then refused because the vector's body is no Stripe event
    assert response.status_code == 422, response.get_json()
    assert set(response.get_json()["errors"]) >= {"id", "type", "data"}


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_invoice_events_mirror_one_invoice_row(webhooks, company):
    for event_type, status, paid in (("invoice.created", "draft", 0), ("invoice.finalized", "open", 0),
                                     ("invoice.paid", "paid", 4900)):
        response = webhooks.stripe(stripe_event(event_type, invoice(status, paid)))
        assert response.status_code == 200 and response.get_json() == {"status": "processed"}
    Session.expire_all()
    row = Session.scalar(select(Invoice))
    assert (row.company_id, row.stripe_invoice_id, row.status) == (company.id, "in_1OQxInv0001", "paid")
    assert (row.amount_due, row.amount_paid, row.currency, row.number) == (4900, 4900, "usd", "9C1D2E3F-0001")
    assert row.period_end.timestamp() == 1700000000
    assert count_rows(Invoice) == 1 and count_rows(WebhookEvent) == 3

    # Stripe retries the same event id: applied once
    late = stripe_event("invoice.payment_failed", invoice("open"), event_id="evt_late_failure")
    assert webhooks.stripe(late).get_json() == {"status": "processed"}
    assert webhooks.stripe(late).get_json() == {"status": "duplicate"}
    Session.expire_all()
    # a late, out-of-order delivery never moves a paid invoice back to open
    assert Session.scalar(select(Invoice)).status == "paid"
    assert count_rows(WebhookEvent) == 4


def test_a_payment_intent_and_its_charge_mirror_one_payment(webhooks, company, heard):
    webhooks.stripe(stripe_event("invoice.paid", invoice("paid", 4900)))
    assert webhooks.stripe(stripe_event("charge.succeeded", charge())).get_json() == {"status": "processed"}
    assert webhooks.stripe(stripe_event("payment_intent.succeeded", payment_intent())).get_json() == {
        "status": "processed"}
    payment = Session.scalar(select(Payment))
    assert (payment.stripe_payment_id, payment.amount, payment.status) == ("pi_3OQxPay0001", 4900, "succeeded")
    assert payment.invoice_id == Session.scalar(select(Invoice.id)) and payment.company_id == company.id
    assert count_rows(Payment) == 1
    assert "billing.updated" in [e.name for e in heard]


def test_subscription_events_set_the_tier(webhooks, company, heard):
    created = stripe_event("customer.subscription.created", subscription(metadata={"tier": "pro"}))
    assert webhooks.stripe(created).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "pro"
    assert [(e.name, e.company_id) for e in heard] == [("settings.changed", company.id),
                                                       ("company.tier_changed", company.id)]
    audit = Session.scalar(select(AuditLog).where(AuditLog.action == "company.tier_changed"))
    assert audit.details["previous"] == "free" and audit.details["tier"] == "pro"

    upgraded = stripe_event("customer.subscription.updated", subscription(lookup_key="enterprise_monthly"))
    assert webhooks.stripe(upgraded).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "enterprise"

    deleted = stripe_event("customer.subscription.deleted",
                           subscription(status="canceled", lookup_key="enterprise_monthly"))
    assert webhooks.stripe(deleted).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "free"
    assert [e.name for e in heard].count("settings.changed") == 3


def test_an_unpaid_or_tierless_subscription_changes_nothing(webhooks, company, heard):
    incomplete = stripe_event("customer.subscription.created", subscription("incomplete", {"tier": "pro"}))
    assert webhooks.stripe(incomplete).get_json() == {"status": "ignored"}
    tierless = stripe_event("customer.subscription.updated", subscription(lookup_key="gold_plan"))
    assert webhooks.stripe(tierless).get_json() == {"status": "ignored"}
    assert tier_of(company.id) == "free" and heard == [] and count_rows(WebhookEvent) == 0


def test_unknown_customer_and_unhandled_types_are_acknowledged(webhooks, company, caplog):
    caplog.set_level("INFO", logger="gateway.webhooks")
    stranger = stripe_event("invoice.paid", invoice("paid", 4900, customer="cus_Stranger"))
    assert webhooks.stripe(stranger).get_json() == {"status": "ignored"}
    assert "cus_Stranger" in caplog.text
    assert webhooks.stripe(stripe_event("customer.created", {"id": CUSTOMER, "object": "customer"})
                           ).get_json() == {"status": "ignored"}
    upcoming = invoice("draft")
    del upcoming["id"]  # Stripe's preview of the next invoice has none
    assert webhooks.stripe(stripe_event("invoice.upcoming", upcoming)).get_json() == {"status": "ignored"}
    assert count_rows(Invoice) == 0 and count_rows(WebhookEvent) == 0


def signed(body, timestamp, *secrets):
    return ",".join([f"t={timestamp}"] + [f"v1={stripe_digest(s, body, timestamp)}" for s in secrets])


def test_any_of_several_v1_signatures_is_accepted(webhooks, company):
    body = webhooks.body_of(stripe_event("invoice.created", invoice("draft")))
    header = signed(body, int(WEBHOOK_NOW), "whsec_old_rolled", "whsec_test")
    assert webhooks.post("/webhooks/stripe", body, {"Stripe-Signature": header}).status_code == 200


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_timestamps_are_401(webhooks, company, skew):
    response = webhooks.stripe(stripe_event("invoice.created", invoice("draft")), at=int(WEBHOOK_NOW) + skew)
    assert response.status_code == 401 and "300 s" in response.get_json()["detail"]


def test_bad_or_missing_signatures_are_401(webhooks, company):
    event = stripe_event("invoice.created", invoice("draft"))
    body = webhooks.body_of(event)
    for headers in ({}, {"Stripe-Signature": f"t={int(WEBHOOK_NOW)}"},
                    {"Stripe-Signature": signed(body, int(WEBHOOK_NOW), "whsec_wrong")},
                    {"Stripe-Signature": signed(body, int(WEBHOOK_NOW) - 1, "whsec_test").replace(
                        f"t={int(WEBHOOK_NOW) - 1}", f"t={int(WEBHOOK_NOW)}")}):
        response = webhooks.post("/webhooks/stripe", body, headers)
        assert response.status_code == 401, headers
        assert response.headers["Content-Type"] == "application/problem+json"
    assert count_rows(Invoice) == 0


def test_malformed_json_after_a_valid_signature_is_400(webhooks, company):
    assert webhooks.stripe(b'{"id": "evt_1",').status_code == 400


def test_an_invoice_without_an_id_is_422(webhooks, company):
    broken = invoice("open")
    del broken["id"]
    response = webhooks.stripe(stripe_event("invoice.finalized", broken))
    assert response.status_code == 422 and "id" in response.get_json()["errors"]["data"]["object"]


def test_without_the_secret_the_webhook_is_503(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url, STRIPE_WEBHOOK_SECRET=None)
    with app.app_context():
        response = app.test_client().post("/webhooks/stripe", data=VECTOR_BODY,
                                          headers={"Stripe-Signature": VECTOR_HEADER})
        assert response.status_code == 503 and response.get_json()["title"] == "Not Configured"
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def subscription_event(event_type, created, **fields):
    return {**stripe_event(event_type, subscription(**fields)), "created": created}


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_an_older_subscription_event_delivered_late_does_not_reset_the_tier(webhooks, company, heard,
                                                                            caplog):
    caplog.set_level("WARNING", logger="gateway.webhooks")
    newer = subscription_event("customer.subscription.updated", int(WEBHOOK_NOW) - 60,
                               lookup_key="enterprise_monthly")
    older = subscription_event("customer.subscription.created", int(WEBHOOK_NOW) - 120,
                               metadata={"tier": "pro"})
    assert webhooks.stripe(newer).get_json() == {"status": "processed"}
    assert webhooks.stripe(older).get_json() == {"status": "stale"}
    assert tier_of(company.id) == "enterprise"
    assert older["id"] in caplog.text and "older" in caplog.text
    assert [e.name for e in heard] == ["settings.changed", "company.tier_changed"]
    # the stale delivery is not recorded, and a redelivery of it is just as stale
    assert count_rows(WebhookEvent) == 1
    assert webhooks.stripe(older).get_json() == {"status": "stale"}
    # an older cancellation must not downgrade either
    cancelled = subscription_event("customer.subscription.deleted", int(WEBHOOK_NOW) - 90,
                                   status="canceled", lookup_key="enterprise_monthly")
    assert webhooks.stripe(cancelled).get_json() == {"status": "stale"}
    assert tier_of(company.id) == "enterprise"


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_subscription_events_in_order_each_apply_and_record_their_time(webhooks, company):
    older = subscription_event("customer.subscription.created", int(WEBHOOK_NOW) - 120,
                               metadata={"tier": "pro"})
    newer = subscription_event("customer.subscription.updated", int(WEBHOOK_NOW) - 60,
                               lookup_key="enterprise_monthly")
    assert webhooks.stripe(older).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "pro"
    assert webhooks.stripe(newer).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "enterprise"
    assert Session.get(Company, company.id).tier_set_at.timestamp() == int(WEBHOOK_NOW) - 60
    # an event of the same second as the last applied one still applies (one-second resolution)
    same_second = subscription_event("customer.subscription.deleted", int(WEBHOOK_NOW) - 60,
                                     status="canceled", lookup_key="enterprise_monthly")
    assert webhooks.stripe(same_second).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "free"


def test_an_event_without_created_time_still_applies(webhooks, company):
    newer = subscription_event("customer.subscription.updated", int(WEBHOOK_NOW),
                               lookup_key="enterprise_monthly")
    assert webhooks.stripe(newer).get_json() == {"status": "processed"}
    undated = stripe_event("customer.subscription.updated", subscription(metadata={"tier": "pro"}))
    del undated["created"]
    assert webhooks.stripe(undated).get_json() == {"status": "processed"}
    assert tier_of(company.id) == "pro"


def company_quota(response):
    found = re.search(r'"company";q=(\d+)', response.headers["RateLimit-Policy"])
    return int(found.group(1))


def test_a_tier_set_by_stripe_applies_to_the_next_request(webhook_app, webhooks):
    tenant = sign_up(webhook_app.test_client())
    link_provider_accounts(tenant.company["id"], stripe_customer_id=CUSTOMER)
    for _ in range(2):   # the principal, with its tier, is cached
        before = tenant.get("/api/v1/settings/profile")
    assert before.status_code == 200 and company_quota(before) == 2000
    upgraded = stripe_event("customer.subscription.created", subscription(metadata={"tier": "pro"}))
    assert webhooks.stripe(upgraded).get_json() == {"status": "processed"}
    assert company_quota(tenant.get("/api/v1/settings/profile")) == 6000
