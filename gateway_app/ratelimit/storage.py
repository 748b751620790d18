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

from .windows import Window

with open(os.path.join(os.path.dirname(__file__), "acquire_all.lua"), encoding="utf-8") as _script:
    ACQUIRE_ALL_SCRIPT = _script.read()


class BatchedRedisStorage(RedisStorage):
    """limits' RedisStorage (same keys, same window arithmetic) plus ``acquire_all``."""

    def __init__(self, client):
        super().__init__("redis://", connection_pool=client.connection_pool)

    def initialize_storage(self, uri):
        super().initialize_storage(uri)
        self.lua_acquire_all = self.get_connection().register_script(ACQUIRE_ALL_SCRIPT)

    def window_keys(self, key):
        return (self.prefixed_key(self._previous_window_key(key)),
                self.prefixed_key(self._current_window_key(key)))

    def acquire_all(self, limits):
        """``limits``: [(key, limit, expiry_seconds)]. Returns (allowed, [Window])."""
        keys, args = [], []
        for key, limit, expiry in limits:
            keys.extend(self.window_keys(key))
            args.extend((limit, expiry))
        reply = self.lua_acquire_all(keys, args)
        windows = []
        for index, (_key, limit, expiry) in enumerate(limits):
            weighted, previous, previous_ttl, current, current_ttl = reply[1 + 5 * index: 6 + 5 * index]
            windows.append(Window(limit, expiry, int(previous), int(previous_ttl) / 1000,
                                  int(current), int(current_ttl) / 1000, int(weighted)))
        return bool(reply[0]), windows


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
