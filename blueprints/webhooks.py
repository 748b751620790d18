"""Inbound provider webhooks, each verified with the provider's own signature scheme.

No user credential: the signature over the raw body is the credential. Verification and
processing live in gateway_app/webhooks/; this module maps them onto HTTP.
"""
from flask import request
from marshmallow import Schema, ValidationError, fields, validate

from blueprints.parsing import GatewayBlueprint, malformed
from gateway_app import strict_json
from gateway_app.errors import GatewayProblem
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.webhooks import calcom, retell, sendgrid, stripe
from gateway_app.webhooks.common import NotConfigured
from gateway_app.webhooks.dedupe import RetryDelivery
from gateway_app.webhooks.signatures import SignatureError

# any query: a provider's dashboard may append its own parameters to the URL it is given,
# and the signature over the body is what authenticates a delivery, not the URL
blp = GatewayBlueprint("webhooks", __name__, url_prefix="/webhooks", description="Provider webhooks",
                       any_query=True)

# seconds a provider should wait before delivering again after a 503
RETRY_AFTER = "30"


class WebhookAck(Schema):
    status = fields.String(validate=validate.OneOf(["processed", "duplicate", "ignored"]))
    events = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "SendGrid batches: outcome -> count"})


def parse_json(body):
    try:
        return strict_json.loads(body)
    except strict_json.MalformedJSON as exc:
        raise malformed(exc.reason) from None


def receive(provider):
    """Verify the raw body as sent, then parse it, then process it once."""
    body = request.get_data(cache=True)
    name = provider.PROVIDER
    try:
        provider.verify(body, request.headers)
    except NotConfigured as exc:
        raise GatewayProblem(503, "Not Configured", str(exc), provider=name,
                             headers={"Retry-After": RETRY_AFTER}) from None
    except SignatureError as exc:
        raise GatewayProblem(401, "Unauthorized", str(exc), provider=name) from None
    document = parse_json(body)
    try:
        return provider.handle(document)
    except ValidationError as exc:
        raise GatewayProblem(422, "Unprocessable Entity",
                             "The event did not have the shape this provider sends; see errors.",
                             provider=name, errors=exc.messages) from None
    except RetryDelivery as exc:
        raise GatewayProblem(503, "Service Unavailable", str(exc), provider=name,
                             headers={"Retry-After": RETRY_AFTER}) from None


@blp.route("/retell", methods=["POST"])
@blp.doc(operationId="receiveRetellWebhook")
@blp.response(200, WebhookAck)
@blp.alt_response(401, description="The signature is missing or wrong.")
@blp.alt_response(400, description="The body is not JSON the gateway accepts (I-JSON).")
@blp.alt_response(422, description="The event does not have the shape this provider sends (errors).")
@gateway_policy(public=True, exempt_limits=True)
def retell_webhook():
    """Retell call events (x-retell-signature)."""
    return receive(retell)


@blp.route("/calcom", methods=["POST"])
@blp.doc(operationId="receiveCalcomWebhook")
@blp.response(200, WebhookAck)
@blp.alt_response(401, description="The signature is missing or wrong.")
@blp.alt_response(400, description="The body is not JSON the gateway accepts (I-JSON).")
@blp.alt_response(422, description="The event does not have the shape this provider sends (errors).")
@gateway_policy(public=True, exempt_limits=True)
def calcom_webhook():
    """Cal.com booking events (X-Cal-Signature-256)."""
    return receive(calcom)


@blp.route("/stripe", methods=["POST"])
@blp.doc(operationId="receiveStripeWebhook")
@blp.response(200, WebhookAck)
@blp.alt_response(401, description="The signature is missing or wrong.")
@blp.alt_response(400, description="The body is not JSON the gateway accepts (I-JSON).")
@blp.alt_response(422, description="The event does not have the shape this provider sends (errors).")
@gateway_policy(public=True, exempt_limits=True)
def stripe_webhook():
    """Stripe events (Stripe-Signature)."""
    return receive(stripe)


@blp.route("/sendgrid", methods=["POST"])
@blp.doc(operationId="receiveSendgridWebhook")
@blp.response(200, WebhookAck)
@blp.alt_response(401, description="The signature is missing or wrong.")
@blp.alt_response(400, description="The body is not JSON the gateway accepts (I-JSON).")
@blp.alt_response(422, description="The event does not have the shape this provider sends (errors).")
@gateway_policy(public=True, exempt_limits=True)
def sendgrid_webhook():
    """SendGrid Event Webhook batches (X-Twilio-Email-Event-Webhook-Signature)."""
    return receive(sendgrid)
