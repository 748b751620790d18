"""A small key-value store for credentials state: Redis when configured, in-process otherwise.

Sessions, the principal cache, its invalidation versions and the access-token
denylist all need the same few operations with expiry. With Redis they are shared
by every worker; without it (the embedded single-worker default) a process-local
dict does the same job. Redis failures surface as ``StoreUnavailable`` so each
caller decides how to degrade.
"""
import threading
import time

import redis

from ..redis_store import write_kept

PREFIX = "gw:identity:"
SWEEP_EVERY = 1000


class StoreUnavailable(Exception):
    pass


class RedisStore:
    shared = True   # what it holds is in Redis, seen by every worker

    def __init__(self, client, reads):
        self.client = client
        # every request reads its principal's versions: a worker's concurrent requests
        # share one MGET, never one sent before they arrived
        self.reads = reads

    def _call(self, method, *args, **kwargs):
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def get(self, key):
        value = self._call("get", PREFIX + key)
        return value.decode() if value is not None else None

    def mget(self, keys):
        values = self._call("mget", [PREFIX + key for key in keys])
        return [value.decode() if value is not None else None for value in values]

    def read_versions(self, keys, calls=()):
        """``(mget(keys), answers of calls)``: small keys every warm request reads, with
        other Redis calls (``(kind, item)`` pairs of redis_store.SharedRoundTrips) made
        in the same round trip. A worker's concurrent requests share one MGET, never one
        sent before they arrived."""
        try:
            values, answers = self.reads.read_with([PREFIX + key for key in keys], calls)
        except (redis.RedisError, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [value.decode() if value is not None else None for value in values], answers

    def set(self, key, value, ttl, only_if_absent=False, kept=False):
        """True when stored (False: ``only_if_absent`` and the key existed). ``kept``: the
        write must outlive a failover (redis_store.write_kept; not with ``only_if_absent``)."""
        if kept:
            return bool(self._kept(lambda pipe: pipe.set(PREFIX + key, value, ex=max(1, int(ttl))))[0])
        return bool(self._call("set", PREFIX + key, value, ex=max(1, int(ttl)), nx=only_if_absent))

    def delete(self, *keys, kept=False):
        if keys and kept:
            self._kept(lambda pipe: [pipe.delete(PREFIX + key) for key in keys])
        elif keys:
            self._call("delete", *[PREFIX + key for key in keys])

    def incr(self, key, kept=False):
        """The new value; ``kept``: outlives a failover (a repeated INCR only counts higher)."""
        if kept:
            return self._kept(lambda pipe: pipe.incr(PREFIX + key))[0]
        return self._call("incr", PREFIX + key)

    def _kept(self, fill):
        try:
            return write_kept(self.client, fill)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc


class MemoryStore:
    """Process-local twin of RedisStore; expired entries are dropped when read."""

    shared = False

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.data = {}
        self.lock = threading.Lock()
        self.writes = 0

    def _live(self, key):
        entry = self.data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self.clock():
            del self.data[key]
            return None
        return value

    def get(self, key):
        with self.lock:
            return self._live(key)

    def mget(self, keys):
        with self.lock:
            return [self._live(key) for key in keys]

    def read_versions(self, keys, calls=()):
        """``(mget(keys), [None, ...])``: Redis calls are not this store's to make."""
        return self.mget(keys), [None] * len(calls)

    def set(self, key, value, ttl, only_if_absent=False, kept=False):
        with self.lock:
            if only_if_absent and self._live(key) is not None:
                return False
            self.data[key] = (str(value), self.clock() + ttl)
            self.writes += 1
            if self.writes % SWEEP_EVERY == 0:
                self._sweep()
            return True

    def _sweep(self):
        """Sessions that are never read again would otherwise stay forever."""
        now = self.clock()
        for key in [k for k, (_, expires) in self.data.items() if expires is not None and expires <= now]:
            del self.data[key]

    def delete(self, *keys, kept=False):
        with self.lock:
            for key in keys:
                self.data.pop(key, None)

    def incr(self, key, kept=False):
        with self.lock:
            value = int(self._live(key) or 0) + 1
            self.data[key] = (str(value), None)
            return value


def make_store(redis_client, reads):
    """``reads``: the worker's batched small-key reads (redis_store.BatchedReads)."""
    return RedisStore(redis_client, reads) if redis_client is not None else MemoryStore()
