"""The last 15 minutes of the gateway's own metrics, for the console: no Prometheus server.

The counters are read from the same registry ``/metrics`` exposes (``metrics_registry``:
every gunicorn worker of this instance through the multiprocess files, or this process).
A counter is cumulative, so a rate needs two readings: each process keeps a small ring
of snapshots (``SnapshotRing``), one taken when the console polls and the last one is
at least ``SPACING`` seconds old. Rates, error rates and latency quantiles are computed
between consecutive snapshots. Any worker's ring gives correct figures, since every
snapshot reads the counters of all workers; a ring only has points for the times some
console polled it, which is what an operator watching needs, and nothing runs when no
one watches. A counter that went down (a worker restarted without multiprocess files)
makes its interval be skipped rather than shown negative.
"""
import math
import os
import threading
import time
from collections import defaultdict, deque

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from ..pipeline.metrics import RequestCounts

WINDOW = 15 * 60   # seconds of history kept and shown
SPACING = 10       # seconds between two snapshots, at least


def metrics_registry():
    """The registry ``/metrics`` exposes: all workers' files under PROMETHEUS_MULTIPROC_DIR."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        registry.register(RequestCounts(multiprocess.MultiProcessCollector(None), passthrough=True))
        return registry
    return REGISTRY


def read_counters(registry=None):
    """One snapshot: the cumulative counts the console shows, keyed by label tuples."""
    requests = defaultdict(float)   # (service, class "2xx".."5xx") -> count
    buckets = defaultdict(float)    # (service, le) -> cumulative count
    cache = defaultdict(float)      # (namespace, tier, outcome) -> count
    rejections = defaultdict(float)  # layer -> count
    for family in (registry or metrics_registry()).collect():
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "gateway_requests_total":
                requests[(labels.get("service") or "gateway", labels["status"][:1] + "xx")] += sample.value
            elif sample.name == "gateway_request_duration_seconds_bucket":
                buckets[(labels.get("service") or "gateway", float(labels["le"]))] += sample.value
            elif sample.name == "gateway_cache_lookups_total":
                cache[(labels["namespace"], labels["tier"], labels["outcome"])] += sample.value
            elif sample.name == "gateway_rate_limit_rejections_total":
                rejections[labels["layer"]] += sample.value
    return {"requests": dict(requests), "buckets": dict(buckets), "cache": dict(cache),
            "rejections": dict(rejections)}


def delta(newer, older):
    """newer - older per key, or None when a counter went down (a reset)."""
    out = {}
    for key, value in newer.items():
        change = value - older.get(key, 0.0)
        if change < 0:
            return None
        out[key] = change
    return out


def quantile(q, cumulative):
    """Prometheus' histogram_quantile over ``[(le, cumulative count)]`` sorted by le:
    linear inside the bucket that holds the rank; the last finite bound for +Inf."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def interval_points(older, newer):
    """{service: point} for the interval between two snapshots, or None across a reset."""
    seconds = newer["at"] - older["at"]
    requests = delta(newer["counters"]["requests"], older["counters"]["requests"])
    buckets = delta(newer["counters"]["buckets"], older["counters"]["buckets"])
    if requests is None or buckets is None or seconds <= 0:
        return None
    points = {}
    for (service, status_class), count in requests.items():
        point = points.setdefault(service, {"t": newer["at"], "requests": 0.0, "errors": 0.0})
        point["requests"] += count
        if status_class == "5xx":
            point["errors"] += count
    by_service = defaultdict(list)
    for (service, le), count in buckets.items():
        by_service[service].append((le, count))
    for service, point in points.items():
        cumulative = sorted(by_service.get(service, []))
        point["rate"] = round(point["requests"] / seconds, 3)
        point["error_rate"] = round(point["errors"] / point["requests"], 4) if point["requests"] else 0.0
        p50, p99 = quantile(0.5, cumulative), quantile(0.99, cumulative)
        point["p50_ms"] = None if p50 is None else round(p50 * 1000, 1)
        point["p99_ms"] = None if p99 is None else round(p99 * 1000, 1)
        del point["requests"], point["errors"]
    return points


class SnapshotRing:
    """This process's snapshots of the last WINDOW seconds, at least SPACING apart."""

    def __init__(self, reader=read_counters, clock=time.time, window=WINDOW, spacing=SPACING):
        self.reader = reader
        self.clock = clock
        self.window = window
        self.spacing = spacing
        self.snapshots = deque()
        self.lock = threading.Lock()

    def poll(self):
        """Take a snapshot if the newest is SPACING old; returns the snapshots in the window."""
        now = self.clock()
        with self.lock:
            if not self.snapshots or now - self.snapshots[-1]["at"] >= self.spacing:
                self.snapshots.append({"at": now, "counters": self.reader()})
            # one snapshot older than the window stays: the first interval's start
            while len(self.snapshots) > 1 and self.snapshots[1]["at"] <= now - self.window:
                self.snapshots.popleft()
            return list(self.snapshots)

    def view(self):
        """Series per service, and cache and rate-limit figures over the window."""
        snapshots = self.poll()
        series = defaultdict(list)
        for older, newer in zip(snapshots, snapshots[1:]):
            for service, point in (interval_points(older, newer) or {}).items():
                series[service].append(point)
        first, last = snapshots[0], snapshots[-1]
        span = last["at"] - first["at"]
        cache_delta = delta(last["counters"]["cache"], first["counters"]["cache"]) if span else None
        rejections_delta = (delta(last["counters"]["rejections"], first["counters"]["rejections"])
                            if span else None)
        return {
            "window_seconds": round(span),
            "series": dict(series),
            "cache": cache_table(last["counters"]["cache"], cache_delta),
            "rate_limit_rejections": {layer: {"total": int(total),
                                              "window": int((rejections_delta or {}).get(layer, 0))}
                                      for layer, total in sorted(last["counters"]["rejections"].items())},
        }


def cache_table(totals, window):
    """Hit ratio by namespace and tier: since the workers started, and over the window."""
    rows = {}
    for (namespace, tier, outcome), count in totals.items():
        row = rows.setdefault((namespace, tier), {"namespace": namespace, "tier": tier,
                                                  "total": defaultdict(float), "window": defaultdict(float)})
        row["total"][outcome] += count
        row["window"][outcome] += (window or {}).get((namespace, tier, outcome), 0.0)
    out = []
    for key in sorted(rows):
        row = rows[key]
        out.append({"namespace": row["namespace"], "tier": row["tier"],
                    "lookups": int(sum(row["total"].values())),
                    "hit_ratio": hit_ratio(row["total"]),
                    "window_lookups": int(sum(row["window"].values())),
                    "window_hit_ratio": hit_ratio(row["window"])})
    return out


def hit_ratio(outcomes):
    """Hits (L1 or L2) over lookups; None before any lookup. A stale copy served is no hit."""
    lookups = sum(outcomes.values())
    if not lookups:
        return None
    hits = sum(count for outcome, count in outcomes.items() if outcome.startswith("hit"))
    return round(hits / lookups, 4)
