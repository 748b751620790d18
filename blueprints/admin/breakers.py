"""Admin: inspect circuit breakers and force one open or closed."""
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from gateway_app import breakers
from gateway_app.pipeline.declarations import ADMIN, gateway_policy

from . import blp


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
    registry = breakers.registry()
    return {"data": [registry.get(name).describe() for name in registry.known()]}


@blp.route("/breakers/<service>", methods=["POST"])
@blp.arguments(ForceState)
@blp.response(200, BreakerOut)
@gateway_policy(**ADMIN)
def force_breaker(body, service):
    """Force a breaker open (for its reset_timeout, then probes) or closed (failures cleared)."""
    registry = breakers.registry()
    if service not in registry.known():
        abort(404, message=f"No circuit breaker named {service!r}; known: {', '.join(registry.known())}.")
    breaker = registry.get(service)
    if body["state"] == "open":
        breaker.open()
    else:
        breaker.close()
    return breaker.describe()
