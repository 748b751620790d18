"""Prometheus series of the upstream path: latency per service, requests by instance and
status, instance health, ejections, bytes streamed. Created once per process
(prometheus refuses duplicate names); label children are kept, since ``labels()``
costs a lock and a lookup on every call.

An answer is one observation of the latency histogram, kept by service, instance and
status, which is all it writes besides its bytes: when scraped, the histogram is summed
by service and ``gateway_upstream_requests_total`` read from its counts. A call that
got no answer to time (a failure, a 5xx) is observed too, with ``answered`` false, so
that it is counted but left out of the latency."""
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from ..pipeline.metrics import SCRAPE_TIME, ScrapedFamilies, counts_of, summed_away

LATENCY = "gateway_upstream_duration_seconds"
CALL_LABELS = ("service", "instance", "status")
ANSWERED = "answered"   # "1" for an answer whose head was timed, "" for a call that failed
_metrics = {}


def upstream_families(latency):
    yield summed_away(latency, {"instance", "status", ANSWERED}, where=lambda labels: labels[ANSWERED])
    yield counts_of(latency, "gateway_upstream_requests",
                    "Calls to remote instances, by instance and outcome (an HTTP status, or "
                    "connect-failed, timeout, error)", CALL_LABELS)


SCRAPE_TIME[LATENCY] = upstream_families


def discovery_metrics():
    if not _metrics:
        _metrics["latency"] = Histogram(
            LATENCY, "Time from sending a request to a remote instance to its answer's headers",
            (*CALL_LABELS, ANSWERED), registry=None)
        REGISTRY.register(ScrapedFamilies(_metrics["latency"]))
        _metrics["healthy"] = Gauge(
            "gateway_upstream_instance_healthy", "1 when the instance takes traffic, 0 when not",
            ["service", "instance"], multiprocess_mode="mostrecent")
        _metrics["ejections"] = Counter(
            "gateway_upstream_ejections_total",
            "Instances taken out of the rotation by consecutive failed requests", ["service", "instance"])
        _metrics["bytes"] = Counter(
            "gateway_upstream_bytes_total", "Body bytes relayed to (sent) and from (received) instances",
            ["service", "direction"])
    return _metrics


class UpstreamMetrics:
    def __init__(self):
        self.metrics = discovery_metrics()
        self.children = {}   # (metric, *label values as given) -> its child

    def child(self, name, *labels):
        key = (name, *labels)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = self.metrics[name].labels(*labels)
        return found

    def answered(self, service, instance_id, outcome, seconds=None):
        """``outcome``: the answer's status (an int, kept as it is: labels() makes the
        label's text once, when the child is made) or a failure's name; ``seconds``: the
        time to the answer's head, None for a call that got none to time."""
        if seconds is None:
            self.child("latency", service, instance_id, outcome, "").observe(0)
        else:
            self.child("latency", service, instance_id, outcome, "1").observe(seconds)

    def health(self, service, instance_id, healthy):
        self.child("healthy", service, instance_id).set(1 if healthy else 0)

    def ejected(self, service, instance_id):
        self.child("ejections", service, instance_id).inc()

    def counter_of_bytes(self, service, direction):
        return self.child("bytes", service, direction).inc
