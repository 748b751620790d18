"""Prometheus series of the upstream path: latency per service, requests by instance and
status, instance health, ejections, bytes streamed. Created once per process
(prometheus refuses duplicate names); label children are kept, since ``labels()``
costs a lock and a lookup on every call."""
from prometheus_client import Counter, Gauge, Histogram

_metrics = {}


def discovery_metrics():
    if not _metrics:
        _metrics["latency"] = Histogram(
            "gateway_upstream_duration_seconds",
            "Time from sending a request to a remote instance to its answer's headers",
            ["service"])
        _metrics["requests"] = Counter(
            "gateway_upstream_requests_total",
            "Calls to remote instances, by instance and outcome (an HTTP status, or "
            "connect-failed, timeout, error)", ["service", "instance", "status"])
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
        label's text once, when the child is made) or a failure's name."""
        self.child("requests", service, instance_id, outcome).inc()
        if seconds is not None:
            self.child("latency", service).observe(seconds)

    def health(self, service, instance_id, healthy):
        self.child("healthy", service, instance_id).set(1 if healthy else 0)

    def ejected(self, service, instance_id):
        self.child("ejections", service, instance_id).inc()

    def counter_of_bytes(self, service, direction):
        return self.child("bytes", service, direction).inc
