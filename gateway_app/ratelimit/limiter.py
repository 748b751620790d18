"""The gateway's limiter: all five layers in one all-or-nothing step, Redis or memory.

With Redis configured the counters are shared by every worker and instance. When Redis
fails the limiter either keeps limiting with per-process counters (``fail_open``, as
Kong, Envoy and Spring Cloud Gateway do) or refuses with 503, and tries Redis again
every ``storage_retry_interval`` seconds so that it recovers by itself.
"""
import logging
import time
from typing import NamedTuple

from redis import RedisError

from .metrics import limiter_metrics
from .quotas import QuotaSet
from .storage import BatchedMemoryStorage, BatchedRedisStorage
from .windows import remaining

log = logging.getLogger("gateway.ratelimit")


class LimiterUnavailable(Exception):
    """Redis is unreachable and the policy is ``fail_open: false``."""


def _freed_last(pair):
    return pair[1].retry_after


class Decision(NamedTuple):
    allowed: bool
    quota_set: QuotaSet
    windows: list
    used: list = ()            # each window's weighted count
    degraded: bool = False     # counted per process because Redis is down

    @property
    def quotas(self):
        return self.quota_set.quotas

    def breached(self):
        """The refusing quota and window whose budget frees up last (the binding one)."""
        pairs = list(zip(self.quotas, self.windows))
        refused = [(q, w) for q, w in pairs if w.used + 1 > w.limit]
        return max(refused or pairs, key=_freed_last)

    def closest_to_exhaustion(self):
        """The quota with the smallest share of its limit left (on a tie, the fewest left)."""
        limits, used = self.quota_set.limits, self.used
        closest = 0
        closest_limit = limits[0]
        closest_left = remaining(closest_limit, used[0])   # without making the Window
        for index in range(1, len(limits)):
            limit = limits[index]
            left = remaining(limit, used[index])
            # left / limit < closest_left / closest_limit, in integers
            share_order = left * closest_limit - closest_left * limit
            if share_order < 0 or (share_order == 0 and left < closest_left):
                closest, closest_limit, closest_left = index, limit, left
        return self.quotas[closest], self.windows[closest]


class GatewayLimiter:
    def __init__(self, redis_client, round_trips=None, fail_open=True, retry_interval=5.0):
        self.shared = (BatchedRedisStorage(redis_client, round_trips)
                       if redis_client is not None else None)
        self.local = BatchedMemoryStorage()
        self.fail_open = fail_open
        self.retry_interval = retry_interval
        self.outage_until = 0.0    # monotonic time before which Redis is not tried again
        self.metrics = limiter_metrics()

    @property
    def in_outage(self):
        return self.outage_until > 0

    def acquire(self, quota_set):
        entries = quota_set.entries
        if self.shared_available:
            try:
                got = self.shared.acquire_all(entries)
            except (RedisError, OSError) as exc:
                self.record_outage(exc)
            else:
                return self.decision_from(quota_set, got)
        degraded = self.shared is not None
        if degraded and not self.fail_open:
            raise LimiterUnavailable()
        got = self.local.acquire_all(entries)
        return Decision(got.allowed, quota_set, got.windows, got.used, degraded)

    def decision_from(self, quota_set, got):
        """The Decision of a shared acquisition (made by ``acquire`` or ahead)."""
        if self.in_outage:
            log.warning("rate-limit storage recovered: limits are shared again")
            self.outage_until = 0.0
        return Decision(got.allowed, quota_set, got.windows, got.used)

    def give_back(self, entries, got):
        """Return what a shared acquisition made ahead took and no request spent."""
        if not got.allowed:
            return   # a refusal takes nothing
        try:
            self.shared.give_back(entries, got)
        except (RedisError, OSError) as exc:   # the units expire with their windows
            log.warning("rate-limit storage: a unit taken ahead could not be given back (%s: %s)",
                        type(exc).__name__, exc)

    @property
    def shared_available(self):
        """Whether Redis is to be tried now (configured, and not in a known outage)."""
        return self.shared is not None and time.monotonic() >= self.outage_until

    def record_outage(self, exc):
        self.metrics["storage_errors"].labels("per_process" if self.fail_open else "refuse").inc()
        if not self.in_outage:
            log.warning("rate-limit storage unreachable (%s: %s): %s", type(exc).__name__, exc,
                        "falling back to per-process limits" if self.fail_open
                        else "refusing requests with 503 (fail_open: false)")
        self.outage_until = time.monotonic() + self.retry_interval

    def reset(self, quotas):
        """Forget the counts of ``quotas`` everywhere they may be kept."""
        for quota in quotas:
            if self.shared is not None:
                self.shared.clear_sliding_window(quota.key, quota.window)
            self.local.clear_sliding_window(quota.key, quota.window)
