"""Metrics & monitoring: Prometheus request metrics and one JSON access-log line per request."""
import json
import logging

from marshmallow import Schema, fields, validate
from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

from ..policy_types import strict
from .base import Stage

access_log = logging.getLogger("gateway.access")
_metrics = {}
# the methods a label may name: any other a client sends is counted as OTHER, so that no
# request can add a series
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


REQUEST_LABELS = ("service", "method", "status")
LATENCY = "gateway_request_duration_seconds"
# the stage that answered or refused, "" when none did: kept by the latency histogram's
# series so that gateway_short_circuits_total is read from their counts when scraped,
# and summed away from the histogram that is exposed
STAGE = "short_circuited_by"
# raw family name -> a function giving the families exposed in its place when scraped;
# discovery/metrics.py adds the upstream path's
SCRAPE_TIME = {}


def request_metrics(buckets):
    """Created once per process: prometheus refuses duplicate names on re-registration."""
    if not _metrics:
        # gateway_requests_total and gateway_short_circuits_total are this histogram's
        # counts, read from it when scraped (ScrapedFamilies), so a request writes one
        # series, not three
        _metrics["latency"] = Histogram(LATENCY, "Time from first pipeline stage to response",
                                        (*REQUEST_LABELS, STAGE), buckets=buckets, registry=None)
        REGISTRY.register(ScrapedFamilies(_metrics["latency"]))
    return _metrics


def summed_away(family, dropped, where=None):
    """``family`` with the samples that differ only in the ``dropped`` labels added up
    (a ``_created`` time: the earliest), of the series whose labels ``where`` accepts."""
    totals = {}
    for sample in family.samples:
        if where is not None and not where(sample.labels):
            continue
        labels = {name: value for name, value in sample.labels.items() if name not in dropped}
        key = (sample.name, tuple(labels.items()))
        if key not in totals:
            totals[key] = sample.value
        elif sample.name.endswith("_created"):
            totals[key] = min(totals[key], sample.value)
        else:
            totals[key] += sample.value
    summed = Metric(family.name, family.documentation, family.type, family.unit)
    for (name, labels), value in totals.items():
        summed.add_sample(name, dict(labels), value)
    return summed


def counts_of(histogram, counter, documentation, labels, read_from=None, where=None):
    """A counter family ``counter`` (its name without ``_total``) labelled ``labels``: the
    histogram family's counts under its labels ``read_from`` (by default the same names),
    summed over its other labels, of the series whose labels ``where`` accepts."""
    family = CounterMetricFamily(counter, documentation, labels=labels)
    totals = {}
    for sample in histogram.samples:
        if sample.name == histogram.name + "_count" and (where is None or where(sample.labels)):
            key = tuple(sample.labels[name] for name in read_from or labels)
            totals[key] = totals.get(key, 0.0) + sample.value
    for key, value in totals.items():
        family.add_metric(key, value)
    return family


def request_families(latency):
    yield summed_away(latency, {STAGE})
    yield counts_of(latency, "gateway_requests", "Requests answered by the gateway", REQUEST_LABELS)
    yield counts_of(latency, "gateway_short_circuits", "Requests a stage answered or refused before the handler",
                    ("stage", "status"), read_from=(STAGE, "status"), where=lambda labels: labels[STAGE])


SCRAPE_TIME[LATENCY] = request_families


class ScrapedFamilies:
    """A prometheus collector: what ``source`` (a collector: a metric itself, or the
    multiprocess collector of a scrape) yields, each family named in SCRAPE_TIME replaced
    by what is derived from it."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        for family in self.source.collect():
            derive = SCRAPE_TIME.get(family.name)
            if derive is None:
                yield family
            else:
                yield from derive(family)


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
        # (service, method, status, stage) -> histogram child: labels() costs a lock and a
        # lookup per call; the set of combinations is small and fixed by the routes
        self.children = {}

    def series_of(self, service, method, status, stage):
        key = (service, method, status, stage)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = self.metrics["latency"].labels(service, method, str(status), stage or "")
        return found

    def after(self, ctx, request, response):
        elapsed = ctx.elapsed
        method = request.method if request.method in METHODS else "OTHER"
        # counted by the observation too (gateway_requests_total and, for a stage that
        # answered or refused, gateway_short_circuits_total: ScrapedFamilies)
        self.series_of(ctx.service or "gateway", method, response.status_code,
                       ctx.short_circuited_by).observe(elapsed)
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
