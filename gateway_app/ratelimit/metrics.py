"""Prometheus metrics of the rate limiter (created once per process)."""
from prometheus_client import Counter

_metrics = {}


def limiter_metrics():
    if not _metrics:
        _metrics["rejections"] = Counter(
            "gateway_rate_limit_rejections_total", "Requests answered 429, by the layer that refused",
            ["layer"])
        _metrics["storage_errors"] = Counter(
            "gateway_rate_limit_storage_errors_total",
            "Rate-limit storage (Redis) failures; requests then use per-process limits or get 503",
            ["fallback"])
    return _metrics
