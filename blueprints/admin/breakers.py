"""Admin: inspect circuit breakers and force one open or closed."""
from marshmallow import Schema, fields, validate

from gateway_app.pipeline.declarations import ADMIN, gateway_policy
from gateway_app.services import operations

from . import blp, refused


class BreakerOut(Schema):
    service = fields.String()
    state = fields.String()
    failures_in_window = fields.Integer()
    failure_threshold = fields.Integer()
    failure_window = fields.Integer()
    reset_timeout = fields.Integer()
    half_open_probes = fields.Integer()
    retry_after = fields.Integer()


class BreakerList(Schema):
    data = fields.List(fields.Nested(BreakerOut))


class ForceState(Schema):
    state = fields.String(required=True, validate=validate.OneOf(["open", "closed"]))


@blp.route("/breakers")
@blp.response(200, BreakerList)
@gateway_policy(**ADMIN)
def list_breakers():
    """Every upstream's breaker: state, failures in the window, seconds to the next probe."""
    return {"data": operations.describe_breakers()}


@blp.route("/breakers/<service>", methods=["POST"])
@blp.arguments(ForceState)
@blp.response(200, BreakerOut)
@gateway_policy(**ADMIN)
def force_breaker(body, service):
    """Force a breaker open (for its reset_timeout, then probes) or closed (failures cleared).
    Written to the audit log."""
    with refused():
        return operations.force_breaker(service, body["state"], via="admin-api")
