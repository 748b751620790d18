"""limits' storages extended with the one thing flask-limiter cannot do: take several
sliding-window-counter limits all-or-nothing, in one step.

flask-limiter hits each limit in turn, so a breach of the fifth layer has already spent
the first four. ``acquire_all`` tests every window and increments them only if all
pass - on Redis in one Lua script (one round trip, atomic across workers and
instances), in memory under one lock.
"""
import os
import threading
from collections.abc import Sequence
from typing import NamedTuple

from limits.storage import MemoryStorage, RedisStorage

from redis.exceptions import NoScriptError

from ..memo import BoundedMemo
from ..redis_store import CoalescedCalls, OwnConnection, resp_arguments
from .windows import Window

with open(os.path.join(os.path.dirname(__file__), "acquire_all.lua"), encoding="utf-8") as _script:
    ACQUIRE_ALL_SCRIPT = _script.read()


class Acquisition(NamedTuple):
    """What one request got from a storage."""
    allowed: bool
    windows: Sequence       # as they are after the request; [] when the check failed
    used: list              # each window's weighted count (what its RateLimit header needs)
    check_held: bool        # True when there was nothing to check
    read_values: list       # the values of the check's read keys


class ReportedWindows(Sequence):
    """The script's report of one request's windows, five integers per limit (weighted
    count, previous count, previous TTL in ms, current count, current TTL in ms), made
    into Windows only when one is asked for: a request's headers need only one."""
    __slots__ = ("limits", "counts")

    def __init__(self, limits, counts):
        self.limits = limits
        self.counts = counts

    def __len__(self):
        return len(self.limits)

    def __getitem__(self, index):
        index = range(len(self.limits))[index]   # negative indexes, IndexError
        _key, limit, expiry = self.limits[index]
        weighted, previous_count, previous_ttl, current_count, current_ttl = \
            self.counts[5 * index:5 * index + 5]
        return Window(limit, expiry, weighted, previous_count, previous_ttl / 1000,
                      current_count, current_ttl / 1000)


class BatchedRedisStorage(RedisStorage):
    """limits' RedisStorage (same keys, same window arithmetic) plus ``acquire_all``."""

    def __init__(self, client):
        super().__init__("redis://", connection_pool=client.connection_pool)
        self.coalesced = CoalescedCalls(self.acquire_batch)
        self.batch_connection = OwnConnection(client)
        # the same limits and checks come again and again: their operands are encoded once
        self.limit_operands = BoundedMemo(self.encode_limit_operands)
        self.check_operands = BoundedMemo(self.encode_check_operands)

    def initialize_storage(self, uri):
        super().initialize_storage(uri)
        self.lua_acquire_all = self.get_connection().register_script(ACQUIRE_ALL_SCRIPT)

    def window_keys(self, key):
        from .. import compat   # limits names these keys privately
        return compat.sliding_window_keys(self, key)

    def acquire_all(self, limits, check=None):
        """``limits``: [(key, limit, expiry_seconds)]; ``check``: None, or what the script
        must verify before taking anything and read besides (``check_keys``, their
        ``expected`` values, ``read_keys``: pipeline/shared_reads.py). Returns an Acquisition.

        A worker's concurrent requests are sent to Redis together: one round trip for all.
        """
        return self.coalesced.call((limits, check))

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

    def encode_limit_operands(self, limits):
        """The limits' part of a request's operands: (key count, KEYS, argument count, ARGV)."""
        keys, args = [], []
        for key, limit, expiry in limits:
            keys.extend(self.window_keys(key))
            args.extend((limit, expiry))
        return len(keys), resp_arguments(keys), len(args), resp_arguments(args)

    @staticmethod
    def encode_check_operands(limit_count_and_check):
        """The rest of a request's operands: (key count, KEYS, argument count, ARGV)."""
        limit_count, check = limit_count_and_check
        if check is None:
            return 0, b"", 3, resp_arguments((limit_count, 0, 0))
        keys = (*check.check_keys, *check.read_keys)
        args = (limit_count, len(check.check_keys), len(check.read_keys),
                *("" if value is None else value for value in check.expected))
        return len(keys), resp_arguments(keys), len(args), resp_arguments(args)

    def acquire_batch(self, requests):
        """One script call taking each request's limits in turn: [(limits, check)] in,
        one Acquisition per request out."""
        key_count, keys, arg_count, args = 0, [], 1, [resp_arguments((len(requests),))]
        for limits, check in requests:
            for operands in (self.check_operands[len(limits), check],
                             self.limit_operands[tuple(limits)]):
                key_count += operands[0]
                keys.append(operands[1])
                arg_count += operands[2]
                args.append(operands[3])
        reply = self.run_acquire_all(key_count, b"".join(keys), arg_count, b"".join(args))
        answers, position = [], 0
        for limits, check in requests:
            read_count = len(check.read_keys) if check is not None else 0
            read_values = reply[position:position + read_count]
            status = reply[position + read_count]
            position += read_count + 1
            if status == -1:
                answers.append(Acquisition(False, [], [], False, read_values))
                continue
            end = position + 5 * len(limits)
            counts = reply[position:end]
            position = end
            answers.append(Acquisition(status == 1, ReportedWindows(limits, counts), counts[0::5],
                                       True, read_values))
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
            allowed = all(window.used + 1 <= window.limit for window in windows)
            if allowed:
                for key, limit, expiry in limits:
                    self.acquire_sliding_window_entry(key, limit, expiry)
                windows = self.read_windows(limits)
            return Acquisition(allowed, windows, [window.used for window in windows], True, [])
