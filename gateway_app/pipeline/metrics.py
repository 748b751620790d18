"""Metrics & monitoring: Prometheus request metrics and one JSON access-log line per request."""
import json
import logging

from marshmallow import Schema, fields, validate
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily

from ..policy_types import strict
from .base import Stage

access_log = logging.getLogger("gateway.access")
_metrics = {}
# the methods a label may name: any other a client sends is counted as OTHER, so that no
# request can add a series
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


REQUEST_LABELS = ("service", "method", "status")
LATENCY = "gateway_request_duration_seconds"


def request_metrics(buckets):
    """Created once per process: prometheus refuses duplicate names on re-registration."""
    if not _metrics:
        _metrics["latency"] = Histogram(
            LATENCY, "Time from first pipeline stage to response", REQUEST_LABELS, buckets=buckets)
        # gateway_requests_total is the histogram's count under the same labels, read
        # from it when scraped (RequestCounts), so a request writes one series, not two
        REGISTRY.register(RequestCounts(_metrics["latency"], passthrough=False))
        _metrics["short_circuits"] = Counter(
            "gateway_short_circuits_total", "Requests a stage answered or refused before the handler",
            ["stage", "status"])
    return _metrics


class RequestCounts:
    """A prometheus collector adding ``gateway_requests_total{service, method, status}``,
    the count of ``gateway_request_duration_seconds`` under the same labels, to what
    ``source`` (a collector: the histogram itself, or the multiprocess collector of a
    scrape) yields. ``passthrough``: yield the source's families too."""

    def __init__(self, source, passthrough):
        self.source = source
        self.passthrough = passthrough

    @staticmethod
    def family():
        return CounterMetricFamily("gateway_requests", "Requests answered by the gateway",
                                   labels=REQUEST_LABELS)

    def describe(self):
        return [self.family()]

    def collect(self):
        for family in self.source.collect():
            if self.passthrough:
                yield family
            if family.name == LATENCY:
                counts = self.family()
                for sample in family.samples:
                    if sample.name == LATENCY + "_count":
                        counts.add_metric([sample.labels[name] for name in REQUEST_LABELS], sample.value)
                yield counts


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
        # (service, method, status) -> histogram child: labels() costs a lock and a lookup
        # per call; the set of combinations is small and fixed by the routes
        self.children = {}
        self.short_circuit_children = {}   # (stage, status) -> counter child, for the same reason

    def series_of(self, service, method, status):
        key = (service, method, status)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = self.metrics["latency"].labels(service, method, str(status))
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
        # counted by the observation too (gateway_requests_total, RequestCounts)
        self.series_of(ctx.service or "gateway", method, response.status_code).observe(elapsed)
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
