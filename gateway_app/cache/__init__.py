"""The response cache behind the caching stage: keys, generations, tiers, invalidation.

The stage (gateway_app/pipeline/caching.py) decides what is cacheable and speaks HTTP;
this package stores and invalidates.
"""
from .entries import capture, refusal_reason, serve, strong_etag
from .invalidation import CacheUnavailable, Invalidator
from .keys import CacheScope, entry_key, request_fingerprint, stale_key
from .metrics import cache_metrics
from .rules import InvalidationRules
from .tiers import MISSING, TieredCache

__all__ = ["CacheScope", "CacheUnavailable", "InvalidationRules", "Invalidator", "MISSING",
           "TieredCache", "cache_metrics", "capture", "entry_key", "refusal_reason",
           "request_fingerprint", "serve", "stale_key", "strong_etag"]
