"""The two tiers: L1 in this worker process, L2 in Redis (in-process without REDIS_URL).

Both are flask-caching backends. A namespace of tier ``l1`` is kept in both tiers (L1 for
speed, L2 so a worker that has not seen the request yet still hits); a namespace of tier
``l2`` (larger, longer-lived data) is kept in Redis only. Stale copies (no generation in
their key) live in L2 for ``stale_ttl``.

An answer is written to L2 in the worker's shared round trip (redis_store.SharedRoundTrips)
with the other requests' reads, not through a pooled connection of its own: taking and
returning a pooled connection, redis-py's per-command wrappers and a round trip of its
own cost about a tenth of an uncached answer's CPU. Entries are read back through
flask-caching's backend, so they are written in its form (its key prefix and serializer).
"""
import time

from cachetools import LRUCache
from cachelib.serializers import BaseSerializer
from flask_caching import Cache
from flask_caching.backends import SimpleCache

from ..locks import section_lock
from .generations import LocalGenerations, RedisGenerations
from .guard import REDIS_FAULTS, RedisGuard

MISSING = object()  # Redis could not answer


class KeptObjects(BaseSerializer):
    """A cachelib serializer that keeps the object itself."""

    @staticmethod
    def dumps(value):
        return value

    @staticmethod
    def loads(value):
        return value


class WorkerMemoryCache(SimpleCache):
    """flask-caching's SimpleCache (bounds, expiry, lock) without pickling: an L1 entry is
    an immutable tuple (entries.capture) that never leaves the process, and copying its
    body out of a pickle on every hit was most of what an L1 lookup cost."""

    serializer = KeptObjects()


def flask_cache_backend(app, config):
    cache = Cache(config=config)
    cache.init_app(app)
    return app.extensions["cache"][cache]


class EntryWrite:
    """A kind of the shared round trips: one SET with its TTL. A SET names one key, so
    each write is a kind of its own (its own command in the round)."""
    __slots__ = ()

    @staticmethod
    def command(items):
        (key, value, ttl), = items
        return ("SET", key, value, "EX", ttl)

    @staticmethod
    def answers(items, command, reply):
        return [reply]

    @staticmethod
    def slot_key(item):
        return item[0]


class TieredCache:
    def __init__(self, app, config, redis_client, reads, metrics, round_trips=None):
        self.namespaces = config["namespaces"]
        self.stale_ttl = config["stale_ttl"]
        self.shared = redis_client is not None
        # cachelib prunes only once it holds more than its threshold, then inserts
        threshold = max(1, config["l1"]["max_entries"] - 1)
        self.l1 = flask_cache_backend(app, {"CACHE_TYPE": "gateway_app.cache.tiers.WorkerMemoryCache",
                                            "CACHE_THRESHOLD": threshold})
        if self.shared:
            self.l2 = flask_cache_backend(app, {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": redis_client,
                                                "CACHE_KEY_PREFIX": "gw:cache:"})
            self.generations = RedisGenerations(redis_client, reads, round_trips)
        else:
            self.l2 = flask_cache_backend(app, {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": threshold})
            self.generations = LocalGenerations()
        self.guard = RedisGuard(config["redis_retry_after_ms"], metrics)
        self.round_trips = round_trips if self.shared else None
        # entry key -> (ETag, when) of what this worker last stored under it
        self.written = LRUCache(maxsize=config["l1"]["max_entries"])
        self.written_lock = section_lock()   # cachetools' caches are not thread-safe

    def tier_of(self, namespace):
        return self.namespaces[namespace]["tier"]

    def ttl_of(self, namespace):
        return self.namespaces[namespace]["ttl"]

    def redis_call(self, operation, function, *args):
        """``function(*args)``, or MISSING when Redis is (or was just found) unreachable."""
        if not self.shared:
            return function(*args)
        if not self.guard.available():
            return MISSING
        try:
            result = function(*args)
        except REDIS_FAULTS as exc:
            self.guard.failed(operation, exc)
            return MISSING
        self.guard.succeeded()
        return result

    def current_generations(self, keys):
        """The tokens of a scope's generation ``keys`` (one Redis round trip), or MISSING."""
        return self.redis_call("generations", self.generations.read, keys)

    def can_read_ahead(self):
        """Whether another stage may read this request's generation tokens for us: only
        from Redis, when it answers, with no missed invalidation to write first."""
        return self.shared and self.guard.available() and not self.generations.pending

    @staticmethod
    def generations_from(values):
        """The tokens in raw ``values`` read ahead, or None when the read failed or a
        token is absent from Redis (``current_generations`` creates it)."""
        if isinstance(values, Exception) or values is None or None in values:
            return None
        return [value.decode() for value in values]

    def get(self, namespace, key):
        """``(stored, "L1" | "L2")``, ``(None, None)`` on a miss, or ``(MISSING, None)``."""
        in_l1 = self.tier_of(namespace) == "l1"
        if in_l1:
            stored = self.l1.get(key)
            if stored is not None:
                return stored, "L1"
        stored = self.redis_call("get", self.l2.get, key)
        if stored is MISSING or stored is None:
            return stored, None
        if in_l1:
            remaining = self.ttl_of(namespace) - int(time.time() - stored[4])
            if remaining > 0:
                self.l1.set(key, stored, timeout=remaining)
        return stored, "L2"

    def unchanged(self, namespace, key, etag):
        """Whether this worker stored the body of ``etag`` under ``key`` less than half the
        namespace's TTL ago: a no-cache refresh that found nothing new need not write the
        same bytes again (every such request would)."""
        with self.written_lock:
            written = self.written.get(key)
        return (written is not None and written[0] == etag
                and time.monotonic() - written[1] < self.ttl_of(namespace) / 2)

    def put(self, namespace, key, stale_key, stored):
        """Store ``stored`` under ``key`` (and as the last good copy under ``stale_key``)."""
        ttl = self.ttl_of(namespace)
        if self.tier_of(namespace) == "l1":
            self.l1.set(key, stored, timeout=ttl)
        if self.redis_call("set", self.write_l2, key, stored, ttl) is MISSING:
            return
        with self.written_lock:
            self.written[key] = (stored[3], time.monotonic())
        if stale_key:
            self.redis_call("set-stale", self.write_l2, stale_key, stored, self.stale_ttl)

    def write_l2(self, key, stored, ttl):
        if self.round_trips is None:
            return self.l2.set(key, stored, ttl)
        value = self.l2.serializer.dumps(stored)
        return self.round_trips.call(EntryWrite(), (self.l2.key_prefix + key, value, ttl))

    def stale(self, stale_key):
        stored = self.redis_call("get-stale", self.l2.get, stale_key)
        return None if stored is MISSING else stored
