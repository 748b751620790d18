"""Repeated failed logins for one account are throttled (authentication.failed_login_limit).

Keyed by the normalised email whether or not the account exists, so the throttle
itself reveals nothing. Counted with the `limits` library in Redis when configured
(shared by all workers), in memory otherwise; if Redis fails the count continues in
this process rather than letting unlimited guesses through.
"""
import logging
import math
import time

from limits import parse
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("gateway.identity")


class LoginThrottle:
    def __init__(self, limit, redis_url=None, redis_client=None):
        self.item = parse(limit)
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared = None
        if redis_url and redis_client is not None:
            # the gateway's pool: blocking, short timeouts, no hidden retries (redis_store.py)
            self.shared = MovingWindowRateLimiter(
                RedisStorage(redis_url, connection_pool=redis_client.connection_pool))

    def _run(self, operation, *args):
        if self.shared is not None:
            try:
                return getattr(self.shared, operation)(self.item, "login", *args)
            except Exception as exc:  # the redis client's errors vary by driver and version
                log.warning("login throttle storage failed (%s); counting in process",
                            type(exc).__name__)
        return getattr(self.local, operation)(self.item, "login", *args)

    def retry_after(self, email):
        """Seconds until ``email`` may try again, or None when it may try now."""
        if self._run("test", email):
            return None
        stats = self._run("get_window_stats", email)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def failed(self, email):
        self._run("hit", email)

    def succeeded(self, email):
        self._run("clear", email)
