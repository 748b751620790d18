"""Operations endpoints: liveness, readiness, Prometheus metrics."""
import os

from flask import current_app, jsonify
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess
from sqlalchemy import text

from gateway_app.db import Session
from gateway_app.errors import problem_response
from gateway_app.extensions import gateway_state
from gateway_app.pipeline.declarations import gateway_policy

blp = Blueprint("ops", __name__, description="Health, readiness and metrics")
OPS = dict(public=True, exempt_limits=True)


@blp.route("/health")
@gateway_policy(**OPS)
def health():
    """Process alive."""
    return jsonify(status="ok")


def check_database():
    Session.execute(text("SELECT 1"))
    return "ok"


def check_redis():
    client = gateway_state().redis
    if client is None:
        return "not configured (in-process stores)"
    client.ping()
    return "ok"


# name -> callable returning a detail string, raising when the dependency is down.
# Other parts of the gateway add their own (integrations report "not configured").
READINESS_CHECKS = {"database": check_database, "redis": check_redis}
# Checks whose failure is reported but does not make the gateway unready.
INFORMATIONAL_CHECKS = set()


@blp.route("/ready")
@gateway_policy(**OPS)
def ready():
    """Database and Redis reachable: 200, or 503 naming what failed."""
    checks, failed = {}, []
    for name, check in READINESS_CHECKS.items():
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency means not ready
            checks[name] = f"failed: {type(exc).__name__}"
            if name not in INFORMATIONAL_CHECKS:
                failed.append(name)
    if failed:
        Session.rollback()
        return problem_response(503, "Service Unavailable",
                                f"Not ready: {', '.join(failed)} unreachable.",
                                problem_type="not-ready", failed=failed, checks=checks)
    return jsonify(status="ready", checks=checks)


@blp.route("/metrics")
@gateway_policy(**OPS)
def metrics():
    """Prometheus exposition, aggregated over all gunicorn workers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return current_app.response_class(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
