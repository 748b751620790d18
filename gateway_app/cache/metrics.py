"""Prometheus counters of the cache, created once per process (names may not be registered twice)."""
from prometheus_client import Counter

_metrics = {}


def cache_metrics():
    if not _metrics:
        _metrics["lookups"] = Counter(
            "gateway_cache_lookups_total",
            "Cacheable requests by namespace, tier and outcome (hit, miss, bypass, stale)",
            ["namespace", "tier", "outcome"])
        _metrics["redis_errors"] = Counter(
            "gateway_cache_redis_errors_total",
            "Redis faults that made the cache step aside", ["operation"])
        _metrics["invalidations"] = Counter(
            "gateway_cache_invalidations_total",
            "Namespaces invalidated, by cause (event name or admin purge)", ["namespace", "cause"])
    return _metrics
