"""Admin: the outbox's backlog and its dead messages, and retrying them.

A message is dead after MAX_ATTEMPTS failed deliveries or a provider's refusal
(gateway_app/outbox.py); once the cause is fixed (a key set, a provider back) an
operator puts it back in the queue and `gateway worker` delivers it.
"""
from marshmallow import Schema, fields, validate

from blueprints.common import ROW_ID
from gateway_app.pipeline.declarations import ADMIN, gateway_policy
from gateway_app.services import operations

from . import blp, refused


class DeadMessageOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    company_id = fields.Integer(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String()
    failed_at = fields.String(allow_none=True)


class OutboxOut(Schema):
    pending = fields.Integer()
    done = fields.Integer()
    dead = fields.Integer()
    oldest_pending_seconds = fields.Integer(allow_none=True)
    dead_messages = fields.List(fields.Nested(DeadMessageOut), metadata={"description": "The 20 newest."})


class RetryIn(Schema):
    ids = fields.List(fields.Integer(validate=ROW_ID), validate=validate.Length(min=1, max=operations.RETRY_BATCH),
                      metadata={"description": "Dead messages to retry; omitted: every dead message "
                                               f"(up to {operations.RETRY_BATCH})."})


class RetryOut(Schema):
    retried = fields.List(fields.Integer())


@blp.route("/outbox", methods=["GET"])
@blp.doc(operationId="getOutboxBacklog")
@blp.response(200, OutboxOut)
@gateway_policy(**ADMIN)
def outbox_backlog():
    """Messages by status, the oldest pending message's wait, the newest dead messages."""
    return operations.outbox_summary()


@blp.route("/outbox/retry", methods=["POST"])
@blp.doc(operationId="retryDeadMessages")
@blp.arguments(RetryIn)
@blp.response(200, RetryOut)
@gateway_policy(**ADMIN)
def retry_dead(body):
    """Put dead messages back in the queue (due now, attempts reset). Written to the audit log."""
    with refused():
        return {"retried": operations.retry_dead_messages(body.get("ids"), via="admin-api")}
