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

from ..redis_store import CoalescedCalls, OwnConnection, resp_arguments
from .windows import Window

# distinct quota sets whose script operands are kept before starting afresh
OPERAND_SETS_KEPT = 10_000

with open(os.path.join(os.path.dirname(__file__), "acquire_all.lua"), encoding="utf-8") as _script:
    ACQUIRE_ALL_SCRIPT = _script.read()


class BatchedRedisStorage(RedisStorage):
    """limits' RedisStorage (same keys, same window arithmetic) plus ``acquire_all``."""

    def __init__(self, client):
        super().__init__("redis://", connection_pool=client.connection_pool)
        self.coalesced = CoalescedCalls(self.acquire_batch)
        self.batch_connection = OwnConnection(client)
        self.script_operands = {}    # limits -> (keys, args): the same sets come again and again

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

    def run_acquire_all(self, key_count, keys, arg_count, args):
        """The script's reply; ``keys`` and ``args`` are encoded by ``resp_arguments``."""
        script = self.lua_acquire_all
        head = resp_arguments(("EVALSHA", script.sha, key_count))
        command = (3 + key_count + arg_count, head + keys + args)
        try:
            return self.batch_connection.execute_encoded(*command)
        except NoScriptError:   # Redis restarted or its scripts were flushed
            self.batch_connection.execute("SCRIPT", "LOAD", script.script)
            return self.batch_connection.execute_encoded(*command)

    def operands_of(self, limits):
        """One request's part of the script call, encoded once per distinct ``limits``
        (a tuple): (key count, KEYS, argument count, ARGV)."""
        found = self.script_operands.get(limits)
        if found is None:
            if len(self.script_operands) >= OPERAND_SETS_KEPT:
                self.script_operands.clear()
            keys, args = [], [len(limits)]
            for key, limit, expiry in limits:
                keys.extend(self.window_keys(key))
                args.extend((limit, expiry))
            found = (len(keys), resp_arguments(keys), len(args), resp_arguments(args))
            self.script_operands[limits] = found
        return found

    def acquire_batch(self, requests):
        """One script call taking each request's limits in turn; one (allowed, windows) each."""
        key_count, keys, arg_count, args = 0, [], 1, [resp_arguments((len(requests),))]
        for limits in requests:
            request_key_count, request_keys, request_arg_count, request_args = \
                self.operands_of(tuple(limits))
            key_count += request_key_count
            keys.append(request_keys)
            arg_count += request_arg_count
            args.append(request_args)
        reply = self.run_acquire_all(key_count, b"".join(keys), arg_count, b"".join(args))
        answers, position = [], 0
        for limits in requests:
            allowed = reply[position] == 1
            windows = []
            start = position + 1
            # the script's integers, as hiredis hands them over: weighted, previous count,
            # previous TTL (ms), current count, current TTL (ms)
            for _key, limit, expiry in limits:
                windows.append(Window(limit, expiry, reply[start], reply[start + 1],
                                      reply[start + 2] / 1000, reply[start + 3],
                                      reply[start + 4] / 1000))
                start += 5
            answers.append((allowed, windows))
            position = start
        return answers


class BatchedMemoryStorage(MemoryStorage):
    """limits' MemoryStorage plus ``acquire_all``: per process, for no Redis or a Redis outage."""

    def __init__(self):
        super().__init__()
        self.batch_lock = threading.Lock()

    def read_windows(self, limits):
        return [Window.from_counts(limit, expiry, *self.get_sliding_window(key, expiry))
                for key, limit, expiry in limits]

    def acquire_all(self, limits):
        with self.batch_lock:
            windows = self.read_windows(limits)
            if any(window.used + 1 > window.limit for window in windows):
                return False, windows
            for key, limit, expiry in limits:
                self.acquire_sliding_window_entry(key, limit, expiry)
            return True, self.read_windows(limits)
