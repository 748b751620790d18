"""limits' storages extended with the one thing flask-limiter cannot do: take several
sliding-window-counter limits all-or-nothing, in one step.

flask-limiter hits each limit in turn, so a breach of the fifth layer has already spent
the first four. ``acquire_all`` tests every window and increments them only if all
pass - on Redis in one Lua script (one round trip, atomic across workers and
instances), in memory under one lock.
"""
import os
import threading

from limits.storage import MemoryStorage, RedisStorage

from redis.exceptions import NoScriptError

from ..redis_store import CoalescedCalls, OwnConnection
from .windows import Window

with open(os.path.join(os.path.dirname(__file__), "acquire_all.lua"), encoding="utf-8") as _script:
    ACQUIRE_ALL_SCRIPT = _script.read()


class BatchedRedisStorage(RedisStorage):
    """limits' RedisStorage (same keys, same window arithmetic) plus ``acquire_all``."""

    def __init__(self, client):
        super().__init__("redis://", connection_pool=client.connection_pool)
        self.coalesced = CoalescedCalls(self.acquire_batch)
        self.batch_connection = OwnConnection(client)

    def initialize_storage(self, uri):
        super().initialize_storage(uri)
        self.lua_acquire_all = self.get_connection().register_script(ACQUIRE_ALL_SCRIPT)

    def window_keys(self, key):
        return (self.prefixed_key(self._previous_window_key(key)),
                self.prefixed_key(self._current_window_key(key)))

    def acquire_all(self, limits):
        """``limits``: [(key, limit, expiry_seconds)]. Returns (allowed, [Window]).

        A worker's concurrent requests are sent to Redis together: one round trip for all.
        """
        return self.coalesced.call(limits)

    def run_acquire_all(self, keys, args):
        script = self.lua_acquire_all
        try:
            return self.batch_connection.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:   # Redis restarted or its scripts were flushed
            self.batch_connection.execute("SCRIPT", "LOAD", script.script)
            return self.batch_connection.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    def acquire_batch(self, requests):
        """One script call taking each request's limits in turn; one (allowed, windows) each."""
        keys, args = [], [len(requests)]
        for limits in requests:
            args.append(len(limits))
            for key, limit, expiry in limits:
                keys.extend(self.window_keys(key))
                args.extend((limit, expiry))
        reply = self.run_acquire_all(keys, args)
        answers, position = [], 0
        for limits in requests:
            allowed = bool(reply[position])
            windows = []
            for index, (_key, limit, expiry) in enumerate(limits):
                start = position + 1 + 5 * index
                weighted, previous, previous_ttl, current, current_ttl = reply[start:start + 5]
                windows.append(Window(limit, expiry, int(previous), int(previous_ttl) / 1000,
                                      int(current), int(current_ttl) / 1000, int(weighted)))
            answers.append((allowed, windows))
            position += 1 + 5 * len(limits)
        return answers


class BatchedMemoryStorage(MemoryStorage):
    """limits' MemoryStorage plus ``acquire_all``: per process, for no Redis or a Redis outage."""

    def __init__(self):
        super().__init__()
        self.batch_lock = threading.Lock()

    def read_windows(self, limits):
        return [Window(limit, expiry, *self.get_sliding_window(key, expiry))
                for key, limit, expiry in limits]

    def acquire_all(self, limits):
        with self.batch_lock:
            windows = self.read_windows(limits)
            if any(window.used + 1 > window.limit for window in windows):
                return False, windows
            for key, limit, expiry in limits:
                self.acquire_sliding_window_entry(key, limit, expiry)
            return True, self.read_windows(limits)
