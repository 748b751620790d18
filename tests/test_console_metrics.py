"""The console's 15-minute window: snapshots of the counters, rates and quantiles between them."""
import math

import pytest

from gateway_app.services.metrics_window import SnapshotRing, cache_table, interval_points, quantile

INF = math.inf


@pytest.mark.parametrize("q, cumulative, expected", [
    (0.5, [(0.1, 50), (0.2, 100), (INF, 100)], 0.1),
    (0.99, [(0.1, 50), (0.2, 100), (INF, 100)], 0.198),
    (0.5, [(0.1, 0), (0.2, 10), (INF, 10)], 0.15),
    (0.99, [(0.1, 0), (0.2, 0), (INF, 10)], 0.2),    # beyond the last bound: that bound
    (0.5, [(0.1, 0), (INF, 0)], None),                 # no observation
])
def test_quantile_is_prometheus_histogram_quantile(q, cumulative, expected):
    found = quantile(q, cumulative)
    assert found is None if expected is None else found == pytest.approx(expected)


def counters(requests, buckets):
    return {"requests": requests, "buckets": buckets, "cache": {}, "rejections": {}}


def test_an_interval_gives_rate_error_rate_and_quantiles():
    older = {"at": 100.0, "counters": counters({("calls", "2xx"): 10}, {("calls", 0.1): 10, ("calls", INF): 10})}
    newer = {"at": 110.0, "counters": counters({("calls", "2xx"): 28, ("calls", "5xx"): 2},
                                               {("calls", 0.1): 20, ("calls", INF): 30})}
    [(service, point)] = interval_points(older, newer).items()
    assert service == "calls"
    assert point == {"t": 110.0, "rate": 2.0, "error_rate": 0.1, "p50_ms": 100.0, "p99_ms": 100.0}


def test_a_counter_that_went_down_skips_its_interval():
    older = {"at": 100.0, "counters": counters({("calls", "2xx"): 10}, {})}
    newer = {"at": 110.0, "counters": counters({("calls", "2xx"): 3}, {})}
    assert interval_points(older, newer) is None


def test_the_ring_keeps_fifteen_minutes_of_snapshots_at_least_ten_seconds_apart():
    now = [0.0]
    reads = []

    def reader():
        reads.append(now[0])
        return counters({("calls", "2xx"): float(len(reads))}, {})
    ring = SnapshotRing(reader=reader, clock=lambda: now[0])
    for _ in range(200):
        ring.poll()
        now[0] += 5
    assert reads == [float(t) for t in range(0, 1000, 10)]   # every other poll reads the counters
    kept = ring.poll()
    assert kept[1]["at"] > now[0] - 900 >= kept[0]["at"]   # one snapshot before the window starts it
    assert len(kept) == 91


def test_cache_hit_ratio_counts_l1_and_l2_hits():
    rows = cache_table({("calls", "l2", "hit"): 3, ("calls", "l2", "miss"): 1, ("calls", "l2", "stale"): 0},
                       {("calls", "l2", "hit"): 1, ("calls", "l2", "miss"): 1})
    assert rows == [{"namespace": "calls", "tier": "l2", "lookups": 4, "hit_ratio": 0.75,
                     "window_lookups": 2, "window_hit_ratio": 0.5}]
