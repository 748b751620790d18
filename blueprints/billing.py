"""Billing service: invoices and payments from Stripe (or the local mirror), plan usage."""
from contextlib import contextmanager

from flask_smorest import abort
from marshmallow import Schema, fields, validate

from blueprints.common import current_company_id
from blueprints.parsing import GatewayBlueprint
from gateway_app.clock import business_now
from gateway_app.integrations import billing
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services.serialization import Serializer, json_response

blp = GatewayBlueprint("billing", __name__, url_prefix="/api/v1/billing", description="Billing service")
BILLING = dict(permission="billing:read", cache="billing", upstream="stripe")


class BillingPageArgs(Schema):
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    # a Stripe object id (in_..., pi_...), as Stripe's own starting_after takes
    cursor = fields.String(load_default=None, validate=[
        validate.Length(min=1, max=255),
        validate.Regexp(r"^[A-Za-z0-9_]+$", error="Not a valid cursor.")])


class InvoiceOut(Schema):
    id = fields.String()
    number = fields.String(allow_none=True)
    status = fields.String()
    currency = fields.String()
    amount_due = fields.Integer()
    amount_paid = fields.Integer()
    period_start = fields.String(allow_none=True)
    period_end = fields.String(allow_none=True)
    hosted_invoice_url = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)


class PaymentOut(Schema):
    id = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String(metadata={"description": "Stripe's PaymentIntent status, e.g. succeeded."})
    invoice = fields.String(allow_none=True, metadata={"description": "The Stripe invoice id (in_...) it paid."})
    created_at = fields.String(allow_none=True)


def billing_page(name, item):
    return type(name, (Schema,), {
        "data": fields.List(fields.Nested(item)),
        "next_cursor": fields.String(allow_none=True),
        "source": fields.String(validate=validate.OneOf(["stripe", "local"]),
                                metadata={"description": "stripe, or local (webhook mirror)"}),
        "note": fields.String(),
    })


InvoicePage = billing_page("InvoicePage", InvoiceOut)
PaymentPage = billing_page("PaymentPage", PaymentOut)
INVOICE_PAGE = Serializer(InvoicePage)
PAYMENT_PAGE = Serializer(PaymentPage)


class UsageOut(Schema):
    period_start = fields.String()
    period_end = fields.String()
    calls = fields.Integer()
    minutes = fields.Integer()
    plan_minutes = fields.Integer()
    remaining_minutes = fields.Integer()
    overage_minutes = fields.Integer()
    percent_used = fields.Float(allow_none=True)
    reported_minutes = fields.Integer(metadata={"description": "minutes already reported to Stripe"})


@contextmanager
def cursor_refusals():
    try:
        yield
    except billing.UnknownCursor:
        abort(422, errors={"cursor": ["Not a valid cursor."]})


USAGE = Serializer(UsageOut)


@blp.route("/invoices")
@blp.doc(operationId="listInvoices")
@blp.arguments(BillingPageArgs(), location="query")
@blp.response(200, InvoicePage)
@gateway_policy(**BILLING)
def invoices(args):
    """The company's invoices, newest first (Stripe, or the local mirror)."""
    with cursor_refusals():
        page = billing.list_invoices(current_company_id(), args["limit"], args["cursor"])
    return json_response(INVOICE_PAGE.one(page), INVOICE_PAGE.exact_only)


@blp.route("/payments")
@blp.doc(operationId="listPayments")
@blp.arguments(BillingPageArgs(), location="query")
@blp.response(200, PaymentPage)
@gateway_policy(**BILLING)
def payments(args):
    """The company's payments, newest first (Stripe, or the local mirror)."""
    with cursor_refusals():
        page = billing.list_payments(current_company_id(), args["limit"], args["cursor"])
    return json_response(PAYMENT_PAGE.one(page), PAYMENT_PAGE.exact_only)


@blp.route("/usage")
@blp.doc(operationId="getUsage")
@blp.response(200, UsageOut)
@gateway_policy(permission="billing:read", cache="billing")
def usage():
    """Calls and minutes this month against the plan's minutes."""
    return json_response(USAGE.one(billing.usage_of(current_company_id(), business_now())), USAGE.exact_only)
