"""What the console shows, gathered from the gateway's own parts (no Prometheus server).

Each section is read on its own: one dependency down (the database, Redis) turns its
sections into an ``error`` and leaves the others readable, since an outage is when an
operator needs the console most.
"""
import logging
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from redis.exceptions import RedisError

from blueprints.console.charts import chart
from gateway_app.db import Session
from gateway_app.dev_mail import kept_mail_query, sink_enabled
from gateway_app.extensions import gateway_state
from gateway_app.models import OutboxMessage
from gateway_app.notifications import EMAIL_KIND
from gateway_app.ratelimit import LAYERS
from gateway_app.services import operations
from gateway_app.services.metrics_window import SnapshotRing

log = logging.getLogger("gateway.console")
DEV_MAIL_SHOWN = 10
CHART_KEYS = (("rate", "requests/s"), ("error_rate", "5xx share"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))


def snapshot_ring():
    """This process's ring, one per app (built on first use)."""
    components = gateway_state().components
    ring = components.get("console_snapshots")
    if ring is None:
        ring = components.setdefault("console_snapshots", SnapshotRing())
    return ring


def section(read):
    try:
        return read()
    except (SQLAlchemyError, RedisError) as exc:
        Session.rollback()   # a failed query leaves the session's transaction unusable
        log.warning("console section %s unavailable: %s", read.__name__, type(exc).__name__)
        return {"error": f"unavailable: {type(exc).__name__}"}


def dependencies():
    checks, failed = gateway_state().readiness.run()
    return {"checks": checks, "failed": failed}


def dev_mail():
    messages = Session.scalars(kept_mail_query(EMAIL_KIND)
                               .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
                               .limit(DEV_MAIL_SHOWN)).all()
    return {"sink_enabled": sink_enabled(), "messages": [
        {"id": m.id, "to": m.payload["to"], "subject": m.payload["subject"], "text": m.payload["text"],
         "created_at": m.created_at.isoformat() if m.created_at else None} for m in messages]}


def services():
    return {"data": operations.describe_services()}


def breakers():
    return {"data": operations.describe_breakers()}


def outbox():
    return operations.outbox_summary()


def console_state():
    metrics = snapshot_ring().view()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": section(services),
        "breakers": section(breakers),
        "metrics": metrics,
        "dependencies": dependencies(),
        "outbox": section(outbox),
        "dev_mail": section(dev_mail),
        "cache_namespaces": operations.cache_namespaces(),
        "rate_limit_layers": list(LAYERS),
    }


def charts_of(state):
    """{service: [(label, svg)]}: the 15-minute charts, drawn here as inline SVG."""
    return {service: [(label, chart(points, key)) for key, label in CHART_KEYS]
            for service, points in sorted(state["metrics"]["series"].items())}
