"""Redis faults: the cache steps aside instead of failing or slowing requests.

After a fault the process stops asking Redis for ``retry_after`` seconds, so at most
one request per interval waits for a socket timeout; the others bypass at once.
"""
import logging
import time

import redis

log = logging.getLogger("gateway.cache")
REDIS_FAULTS = (redis.RedisError, OSError)


class RedisGuard:
    def __init__(self, retry_after_ms, metrics):
        self.retry_after = retry_after_ms / 1000.0
        self.metrics = metrics
        self.down_until = 0.0
        self.down = False

    def available(self):
        return time.monotonic() >= self.down_until

    def failed(self, operation, exc):
        self.metrics["redis_errors"].labels(operation).inc()
        if not self.down:
            log.warning("cache: Redis unreachable during %s (%s: %s); bypassing the cache, "
                        "retrying in %.1f s", operation, type(exc).__name__, exc, self.retry_after)
        self.down = True
        self.down_until = time.monotonic() + self.retry_after

    def succeeded(self):
        if self.down:
            log.warning("cache: Redis reachable again; caching resumed")
        self.down = False
