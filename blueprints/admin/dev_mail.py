"""Admin: the development mail sink, the emails kept instead of sent while SendGrid has
no key outside production (gateway_app/dev_mail.py)."""
from marshmallow import Schema, fields

from blueprints.common import PageArgs, page_newest_first, page_schema
from gateway_app.dev_mail import kept_mail_query, sink_enabled
from gateway_app.models import OutboxMessage
from gateway_app.notifications import EMAIL_KIND
from gateway_app.pipeline.declarations import ADMIN, gateway_policy

from . import blp


class KeptMailOut(Schema):
    id = fields.Integer(attribute="id", metadata={"description": "The outbox message's id."})
    message_id = fields.String(attribute="provider_message_id")
    company_id = fields.Integer(allow_none=True)
    to = fields.Function(lambda message: message.payload["to"],
                         metadata={"type": "array", "items": {"type": "string"}})
    subject = fields.Function(lambda message: message.payload["subject"], metadata={"type": "string"})
    text = fields.Function(lambda message: message.payload["text"], metadata={"type": "string"})
    html = fields.Function(lambda message: message.payload.get("html"), metadata={"type": ["string", "null"]})
    category = fields.Function(lambda message: message.payload.get("category"),
                               metadata={"type": ["string", "null"]})
    created_at = fields.DateTime()


class KeptMailPage(page_schema(KeptMailOut, "KeptMailList")):
    sink_enabled = fields.Boolean(metadata={
        "description": "Whether new emails go to the sink (no SENDGRID_API_KEY, not production)."})


@blp.route("/dev-mail", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, KeptMailPage)
@gateway_policy(**ADMIN)
def list_dev_mail(args):
    """The emails the development mail sink kept, newest first (invitations with their
    token, booking confirmations): every flow can be finished without SendGrid."""
    page = page_newest_first(kept_mail_query(EMAIL_KIND), OutboxMessage.created_at, OutboxMessage.id, args)
    return {**page, "sink_enabled": sink_enabled()}
