"""Stripe events -> Invoice and Payment mirrors and the company's tier.

Stripe posts an Event ``{id, type, created, data: {object}}`` signed with
``Stripe-Signature: t=..,v1=..``; the event id identifies a delivery. The company is
the one whose ``stripe_customer_id`` is the object's ``customer``.
"""
import datetime as dt

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import select

from ..audit import audit
from ..events import emit
from ..extensions import gateway_state
from ..models import TIERS, Company, Invoice, Payment
from ..services.timeranges import epoch_within_calendar
from . import signatures
from .common import IGNORED, now, required_setting, tolerance
from .dedupe import Ignored, Stale, process_once

PROVIDER = "stripe"
# a mirrored invoice never moves back out of these (Stripe does not order deliveries)
SETTLED_INVOICE = ("paid", "void")
SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted")
PAYMENT_EVENTS = {"payment_intent.succeeded": "succeeded", "charge.succeeded": "succeeded",
                  "payment_intent.payment_failed": "failed", "charge.failed": "failed"}
# previews of an invoice that does not exist yet (no id): nothing to mirror
PREVIEW_INVOICE_EVENTS = ("invoice.upcoming", "invoice.will_be_due")
# subscription statuses that keep the paid tier, and those that end it
KEEPS_TIER = ("active", "trialing", "past_due")
ENDS_TIER = ("canceled", "incomplete_expired", "unpaid", "paused")


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class StripeObjectSchema(_Lenient):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    customer = fields.String(allow_none=True)


class InvoiceSchema(StripeObjectSchema):
    number = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    currency = fields.String(allow_none=True, validate=validate.Length(equal=3))
    amount_due = fields.Integer(allow_none=True)
    amount_paid = fields.Integer(allow_none=True)
    period_start = fields.Integer(allow_none=True, validate=epoch_within_calendar())
    period_end = fields.Integer(allow_none=True, validate=epoch_within_calendar())
    hosted_invoice_url = fields.String(allow_none=True)


class PaymentSchema(StripeObjectSchema):
    """A PaymentIntent or a Charge; both name the intent, so either mirrors one Payment."""
    object = fields.String(required=True)
    amount = fields.Integer(required=True)
    amount_received = fields.Integer(allow_none=True)
    currency = fields.String(allow_none=True, validate=validate.Length(equal=3))
    invoice = fields.String(allow_none=True)
    payment_intent = fields.String(allow_none=True)


class PriceSchema(_Lenient):
    lookup_key = fields.String(allow_none=True)
    metadata = fields.Dict(allow_none=True)


class SubscriptionItemSchema(_Lenient):
    price = fields.Nested(PriceSchema, allow_none=True)


class SubscriptionItemsSchema(_Lenient):
    data = fields.List(fields.Nested(SubscriptionItemSchema), load_default=list)


class SubscriptionSchema(StripeObjectSchema):
    status = fields.String(allow_none=True)
    metadata = fields.Dict(allow_none=True)
    items = fields.Nested(SubscriptionItemsSchema, allow_none=True)


class EventDataSchema(_Lenient):
    object = fields.Dict(required=True)


class StripeEventSchema(_Lenient):
    id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(required=True)
    created = fields.Integer(load_default=None, allow_none=True, validate=epoch_within_calendar(),
                             metadata={"description": "When Stripe created the event (epoch s)."})
    data = fields.Nested(EventDataSchema, required=True)


def verify(body, headers):
    secret = required_setting(PROVIDER, "STRIPE_WEBHOOK_SECRET")
    signatures.verify_stripe(secret, body, headers.get(signatures.STRIPE_HEADER),
                             now(), tolerance(PROVIDER))


def route(event_type):
    """(schema of data.object, effect) for the events we mirror, or None."""
    if event_type.startswith("invoice.") and event_type not in PREVIEW_INVOICE_EVENTS:
        return InvoiceSchema, mirror_invoice
    if event_type in PAYMENT_EVENTS:
        return PaymentSchema, mirror_payment
    if event_type in SUBSCRIPTION_EVENTS:
        return SubscriptionSchema, apply_subscription
    return None


def handle(document):
    event = StripeEventSchema().load(document)
    routed = route(event["type"])
    if routed is None:
        return {"status": IGNORED}
    schema, apply = routed
    try:
        obj = schema().load(event["data"]["object"])
    except ValidationError as exc:
        raise ValidationError({"data": {"object": exc.messages}}) from None

    def effect(session, record):
        company = company_for_customer(session, obj.get("customer"))
        record.company_id = company.id
        apply(session, company, event, obj)

    return {"status": process_once(PROVIDER, event["id"], event["type"], effect)}


def company_for_customer(session, customer_id):
    company = session.scalar(select(Company).where(Company.stripe_customer_id == customer_id)) \
        if customer_id else None
    if company is None:
        raise Ignored(f"no company links Stripe customer {customer_id!r}")
    return company


def from_epoch(value):
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)


def mirror_invoice(session, company, event, obj):
    invoice = session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == obj["id"]))
    if invoice is None:
        invoice = Invoice(company_id=company.id, stripe_invoice_id=obj["id"], status="draft")
        session.add(invoice)
    status = obj.get("status") or invoice.status
    if invoice.status not in SETTLED_INVOICE or status in SETTLED_INVOICE:
        invoice.status = status
    for field in ("number", "hosted_invoice_url", "amount_due", "amount_paid"):
        if obj.get(field) is not None:
            setattr(invoice, field, obj[field])
    if obj.get("currency"):
        invoice.currency = obj["currency"].lower()
    if obj.get("period_start") is not None:
        invoice.period_start = from_epoch(obj["period_start"])
    if obj.get("period_end") is not None:
        invoice.period_end = from_epoch(obj["period_end"])
    session.flush()
    emit(session, "billing.updated", company.id, invoice_id=invoice.id)


def mirror_payment(session, company, event, obj):
    # a charge and its intent are one payment: key both by the intent when there is one
    key = obj["id"] if obj["object"] == "payment_intent" else (obj.get("payment_intent") or obj["id"])
    payment = session.scalar(select(Payment).where(Payment.stripe_payment_id == key))
    if payment is None:
        payment = Payment(company_id=company.id, stripe_payment_id=key, amount=0, status="pending")
        session.add(payment)
    status = PAYMENT_EVENTS[event["type"]]
    if payment.status != "succeeded":
        payment.status = status
    payment.amount = obj.get("amount_received") or obj["amount"]
    if obj.get("currency"):
        payment.currency = obj["currency"].lower()
    if obj.get("invoice") and payment.invoice_id is None:
        payment.invoice_id = session.scalar(
            select(Invoice.id).where(Invoice.stripe_invoice_id == obj["invoice"]))
    session.flush()
    emit(session, "billing.updated", company.id, payment_id=payment.id)


def known_tiers():
    return [tier for tier in gateway_state().policy["tiers"] if tier in TIERS]


def tier_named_by(subscription, tiers):
    """The tier in the subscription's metadata, else in a price's metadata or lookup_key
    (``pro`` or ``pro_monthly``)."""
    named = (subscription.get("metadata") or {}).get("tier")
    if named in tiers:
        return named
    for item in (subscription.get("items") or {}).get("data", []):
        price = item.get("price") or {}
        named = (price.get("metadata") or {}).get("tier")
        if named in tiers:
            return named
        lookup_key = (price.get("lookup_key") or "").lower()
        for tier in tiers:
            if lookup_key == tier or lookup_key.startswith((f"{tier}_", f"{tier}-")):
                return tier
    return None


def tier_for(event_type, subscription):
    if event_type == "customer.subscription.deleted" or subscription.get("status") in ENDS_TIER:
        return "free"
    if subscription.get("status") not in KEEPS_TIER:  # incomplete: not paid for yet
        raise Ignored(f"subscription {subscription['id']} is {subscription.get('status')!r}")
    tier = tier_named_by(subscription, known_tiers())
    if tier is None:
        raise Ignored(f"subscription {subscription['id']} names no known tier")
    return tier


def refuse_stale(company, created_at, event):
    """An event created before the one that last set the tier is out of date: ignore it.
    Equal times apply (Stripe's ``created`` has one-second resolution)."""
    if created_at is not None and company.tier_set_at is not None \
            and created_at < company.tier_set_at:
        raise Stale(f"{event['type']} {event['id']} created {created_at.isoformat()} is older than "
                    f"the event that set company {company.id}'s tier "
                    f"({company.tier_set_at.isoformat()})")


def apply_subscription(session, company, event, subscription):
    # lock the company row so two concurrent subscription events compare times in turn
    session.refresh(company, with_for_update=True)
    created_at = from_epoch(event["created"])
    refuse_stale(company, created_at, event)
    tier = tier_for(event["type"], subscription)
    if created_at is not None:
        company.tier_set_at = created_at
    if company.tier == tier:
        return
    audit(session, "company.tier_changed", "company", company.id, company_id=company.id,
          previous=company.tier, tier=tier, source="stripe", subscription=subscription["id"])
    company.tier = tier
    emit(session, "settings.changed", company.id, tier=tier)
    emit(session, "company.tier_changed", company.id, tier=tier)
