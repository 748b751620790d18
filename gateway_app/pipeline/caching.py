"""Stage 4: caching. L1 in the worker, L2 in Redis, invalidated by domain events."""
from .base import Stage


class CachingStage(Stage):
    name = "caching"
    section = "caching"

    def stale_response(self, ctx, request):
        """The last good copy of this request's cache key, marked STALE, or None.

        Used by the circuit-breaker stage and service discovery as their fallback.
        """
        return None
