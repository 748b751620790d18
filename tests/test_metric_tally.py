"""metric_tally.py: request metrics added up in the worker and written in batches read
the same as prometheus_client's own updates, once written."""
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway_app.metric_tally import MetricTally

BUCKETS = [0.005, 0.01, 0.1, 1]
AMOUNTS = [0.0001, 0.005, 0.0051, 0.01, 0.5, 1, 1.5, 30, 0.02]


def series(registry):
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples
            if not sample.name.endswith("_created")}


def test_tallied_updates_read_as_direct_ones_once_flushed():
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    metrics = {}
    for name, registry in (("direct", direct), ("tallied", tallied)):
        metrics[name] = (Counter("requests_total", "r", ["status"], registry=registry).labels("200"),
                         Histogram("latency_seconds", "l", ["status"], buckets=BUCKETS,
                                   registry=registry).labels("200"))
    tally = MetricTally(interval=3600)
    counter, histogram = metrics["direct"]
    for amount in AMOUNTS:
        counter.inc()
        histogram.observe(amount)
        tally.count_and_observe(*metrics["tallied"], amount)
    tally.inc(metrics["tallied"][0])
    counter.inc()
    assert series(tallied) != series(direct)        # nothing written before a flush
    tally.flush()
    assert series(tallied) == series(direct)
    tally.flush()                                    # a second flush adds nothing
    assert series(tallied) == series(direct)


def test_a_request_is_counted_by_the_next_scrape(client):
    def count_of_health_200s():
        text = client.get("/metrics").get_data(as_text=True)
        line = next(line for line in text.splitlines() if line.startswith(
            'gateway_requests_total{method="GET",service="gateway",status="200"}'))
        return float(line.rsplit(" ", 1)[1])
    client.get("/health")
    before = count_of_health_200s()    # counts the /metrics requests too: same labels
    for _ in range(3):
        client.get("/health")
    assert count_of_health_200s() == before + 4
