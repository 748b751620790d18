"""Operations endpoints: liveness, readiness, Prometheus metrics."""
from flask import current_app, jsonify
from marshmallow import Schema, fields, validate
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import problem_response
from gateway_app.extensions import gateway_state
from gateway_app.openapi import text_body
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services.metrics_window import metrics_registry

# any query: probes and scrapers add their own parameters (Prometheus' `params:`), and
# these answers depend on none
blp = GatewayBlueprint("ops", __name__, description="Health, readiness and metrics", any_query=True)
OPS = dict(public=True, exempt_limits=True)


class HealthOut(Schema):
    status = fields.String(validate=validate.OneOf(["ok"]))


class ReadyOut(Schema):
    status = fields.String(validate=validate.OneOf(["ready"]))
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Each dependency: ok, or what failed (integrations: ok, circuit open, not configured)."})


@blp.route("/health")
@blp.doc(operationId="getHealth")
@blp.response(200, HealthOut)
@gateway_policy(**OPS)
def health():
    """Process alive."""
    return jsonify(status="ok")


@blp.route("/ready")
@blp.doc(operationId="getReadiness")
@blp.response(200, ReadyOut)
@gateway_policy(**OPS)
def ready():
    """Database and Redis reachable: 200, or 503 naming what failed."""
    checks, failed = gateway_state().readiness.run()
    if failed:
        return problem_response(503, "Service Unavailable",
                                f"Not ready: {', '.join(failed)} unreachable.",
                                problem_type="not-ready", failed=failed, checks=checks)
    return jsonify(status="ready", checks=checks)


@blp.route("/metrics")
@blp.doc(operationId="getMetrics")
@blp.doc(**text_body("text/plain", "Prometheus text exposition format."))
@gateway_policy(**OPS)
def metrics():
    """Prometheus exposition, aggregated over all gunicorn workers."""
    return current_app.response_class(generate_latest(metrics_registry()), mimetype=CONTENT_TYPE_LATEST)
