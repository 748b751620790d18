"""Metrics & monitoring: Prometheus request metrics and one JSON access-log line per request."""
import json
import logging

from marshmallow import Schema, fields, validate
from prometheus_client import Counter, Histogram

from ..policy_types import strict
from .base import Stage

access_log = logging.getLogger("gateway.access")
_metrics = {}
# the methods a label may name: any other a client sends is counted as OTHER, so that no
# request can add a series
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def request_metrics(buckets):
    """Created once per process: prometheus refuses duplicate names on re-registration."""
    if not _metrics:
        _metrics["requests"] = Counter(
            "gateway_requests_total", "Requests answered by the gateway",
            ["service", "method", "status"])
        _metrics["latency"] = Histogram(
            "gateway_request_duration_seconds", "Time from first pipeline stage to response",
            ["service", "method", "status"], buckets=buckets)
        _metrics["short_circuits"] = Counter(
            "gateway_short_circuits_total", "Requests a stage answered or refused before the handler",
            ["stage", "status"])
    return _metrics


@strict
class MetricsSchema(Schema):
    latency_buckets = fields.List(fields.Float(validate=validate.Range(min=0, min_inclusive=False)),
                                  required=True, validate=validate.Length(min=1))


class MetricsStage(Stage):
    name = "metrics"
    section = "metrics"   # of conf/gateway.yaml; its schema is above
    always_after = True

    def __init__(self, config, access_log_enabled):
        self.metrics = request_metrics(config["latency_buckets"])
        self.log_enabled = access_log_enabled
        # (service, method, status) -> (counter, histogram) children: labels() costs a lock
        # and a lookup per call; the set of combinations is small and fixed by the routes
        self.children = {}
        self.short_circuit_children = {}   # (stage, status) -> counter child, for the same reason

    def series_of(self, service, method, status):
        key = (service, method, status)
        found = self.children.get(key)
        if found is None:
            labels = (service, method, str(status))
            found = self.children[key] = (self.metrics["requests"].labels(*labels),
                                          self.metrics["latency"].labels(*labels))
        return found

    def short_circuits_of(self, stage, status):
        key = (stage, status)
        found = self.short_circuit_children.get(key)
        if found is None:
            found = self.short_circuit_children[key] = self.metrics["short_circuits"].labels(stage, str(status))
        return found

    def after(self, ctx, request, response):
        elapsed = ctx.elapsed
        method = request.method if request.method in METHODS else "OTHER"
        requests, latency = self.series_of(ctx.service or "gateway", method, response.status_code)
        requests.inc()
        latency.observe(elapsed)
        if ctx.short_circuited_by is not None:
            self.short_circuits_of(ctx.short_circuited_by, response.status_code).inc()
        if self.log_enabled:
            access_log.info(json.dumps({
                "request_id": ctx.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "latency_ms": round(elapsed * 1000, 2),
                "service": ctx.service,
                "company_id": ctx.company_id,
                "principal": ctx.principal.kind if ctx.principal else None,
                "client_ip": ctx.client_ip,
                "cache": ctx.cache_status,
                "short_circuited_by": ctx.short_circuited_by,
                # where the time went, stage by stage: the first place to look for a slow request
                "stage_ms": {name: round(seconds * 1000, 3) for name, seconds in ctx.timings.items()},
            }, separators=(",", ":")))
        return response
