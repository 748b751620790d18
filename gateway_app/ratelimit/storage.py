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
from functools import lru_cache
from typing import NamedTuple

from limits.storage import MemoryStorage, RedisStorage
from redis.crc import key_slot

from ..redis_store import is_cluster, round_trips_for
from .windows import Window

OPERAND_SETS = 10_000   # distinct quota sets whose script operands are kept



def script_text(name):
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as script:
        return script.read()


ACQUIRE_ALL_SCRIPT = script_text("acquire_all.lua")
GIVE_BACK_SCRIPT = script_text("give_back.lua")


class Acquisition(NamedTuple):
    """What one request got from a storage."""
    allowed: bool
    windows: Sequence       # as they are after the request
    used: list              # each window's weighted count (what its RateLimit header needs)


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
    """limits' RedisStorage (same keys, same window arithmetic) plus ``acquire_all``.

    A worker's concurrent acquisitions are one script call, sent in the round trip the
    worker's other request-path calls share (redis_store.SharedRoundTrips): it is a kind
    of that round trip (``command``, ``answers``, ``script``).
    """

    def __init__(self, client, round_trips=None):
        self.client = client    # limits' own calls (clear) go to it too: get_connection
        # limits builds a client of its own from the pool; on a Cluster it is never used
        super().__init__("redis://", connection_pool=None if is_cluster(client) else client.connection_pool)
        self.script = ACQUIRE_ALL_SCRIPT
        self.script_sha = client.register_script(ACQUIRE_ALL_SCRIPT).sha
        self.round_trips = round_trips or round_trips_for(client)
        self.giving_back = GivingBack(self, client.register_script(GIVE_BACK_SCRIPT).sha)
        self.in_parts = AcquiredInParts(self)
        # a quota set's keys and arguments, as the script takes them: the same callers
        # come again and again
        self.operands_of = lru_cache(maxsize=OPERAND_SETS)(self.script_operands)
        # on a Cluster, a quota set's limits by hash slot (positions into the set)
        self.slot_parts = lru_cache(maxsize=OPERAND_SETS)(self.parts_by_slot)

    def get_connection(self, readonly=False):
        return self.client

    @property
    def clustered(self):
        return getattr(self.round_trips, "clustered", False)

    def window_keys(self, key):
        from .. import compat   # limits names these keys privately
        return compat.sliding_window_keys(self, key)

    def acquire_all(self, limits):
        """``limits``: [(key, limit, expiry_seconds)]; returns an Acquisition."""
        if self.spans_slots(limits):
            return self.acquire_across_slots(limits)
        return self.round_trips.call(self, limits)

    def give_back(self, limits, acquisition):
        """Return the unit ``acquisition`` (allowed) took of each of ``limits``."""
        if self.spans_slots(limits):
            returns = [(self.giving_back, part) for part in self.split(limits, acquisition)]
            self.round_trips.call_many(returns)
            return
        self.round_trips.call(self.giving_back, (limits, acquisition))

    # -- a Cluster: one script call per hash slot -------------------------------------------
    def spans_slots(self, limits):
        """Whether ``limits`` must be taken in parts (a Cluster, more than one hash slot)."""
        return self.clustered and len(self.slot_parts(limits)) > 1

    def parts_by_slot(self, limits):
        """Positions of ``limits`` grouped by hash slot, in order of first appearance (an
        authenticated request's address quotas, then its company's: docs/redis-keys.md)."""
        parts = {}
        for position, (key, _limit, _expiry) in enumerate(limits):
            parts.setdefault(key_slot(self.window_keys(key)[1].encode()), []).append(position)
        return tuple(tuple(positions) for positions in parts.values())

    def split(self, limits, acquisition):
        """(limits, Acquisition) of each slot's part of ``limits``."""
        counts = acquisition.windows.counts
        parts = []
        for positions in self.slot_parts(limits):
            part = tuple(limits[position] for position in positions)
            part_counts = [count for position in positions for count in counts[5 * position:5 * position + 5]]
            parts.append((part, Acquisition(acquisition.allowed, ReportedWindows(part, part_counts),
                                            part_counts[0::5])))
        return parts

    def acquire_across_slots(self, limits):
        """Each slot's part taken in the same round (one script call each, on their own
        nodes); all-or-nothing kept by giving back the parts taken when another part was
        refused (``joined``). Meanwhile those units count, so a concurrent request at the very edge of
        that limit may be refused: never more than the limit is let through."""
        got = self.round_trips.call_many(self.parts(limits))
        acquisition, returns = self.joined(limits, got)
        if returns:
            self.round_trips.call_many(returns)
        if isinstance(acquisition, Exception):
            raise acquisition
        return acquisition

    def parts(self, limits):
        """(kind, item) calls taking each slot's part of ``limits`` (a kind of
        ClusterRoundTrips may be made of parts: ``in_parts``)."""
        return [(self, tuple(limits[position] for position in positions)) for positions in self.slot_parts(limits)]

    def joined(self, limits, got):
        """(the Acquisition of ``limits`` from its parts' answers, or the exception of a
        part that failed; the give-back calls of the parts taken in vain)."""
        failed = next((answer for answer in got if isinstance(answer, Exception)), None)
        allowed = failed is None and all(answer.allowed for answer in got)
        returns = [] if allowed else [(self.giving_back, (part, answer)) for (_kind, part), answer
                                      in zip(self.parts(limits), got)
                                      if not isinstance(answer, Exception) and answer.allowed]
        if failed is not None:
            return failed, returns
        counts = [0] * (5 * len(limits))
        for positions, answer in zip(self.slot_parts(limits), got):
            for index, position in enumerate(positions):
                reported = list(answer.windows.counts[5 * index:5 * index + 5])
                if answer.allowed and not allowed:
                    reported[0] -= 1   # given back
                    reported[3] -= 1
                counts[5 * position:5 * position + 5] = reported
        return Acquisition(allowed, ReportedWindows(limits, counts), counts[0::5]), returns

    def acquire_batch(self, requests):
        """Each request's limits taken in turn, in one script call now (tests, tools)."""
        return self.round_trips.run_round([(self, limits) for limits in requests])

    def script_operands(self, limits):
        keys, args = [], [len(limits)]
        for key, limit, expiry in limits:
            keys.extend(self.window_keys(key))
            args.extend((limit, expiry))
        return tuple(keys), tuple(args)

    def slot_key(self, limits):
        return self.operands_of(limits)[0][0]

    def command(self, requests):
        """One script call taking each request's limits in turn."""
        keys, args = [], [len(requests)]
        for limits in requests:   # ``limits`` is a QuotaSet's entries: a tuple, hashable
            request_keys, request_args = self.operands_of(limits)
            keys += request_keys
            args += request_args
        return ("EVALSHA", self.script_sha, len(keys), *keys, *args)

    @staticmethod
    def answers(requests, command, reply):
        """One Acquisition per request, from the script's reply."""
        answers, position = [], 0
        for limits in requests:
            status = reply[position]
            end = position + 1 + 5 * len(limits)
            counts = reply[position + 1:end]
            position = end
            answers.append(Acquisition(status == 1, ReportedWindows(limits, counts), counts[0::5]))
        return answers


class AcquiredInParts:
    """A kind of redis_store.ClusterRoundTrips: a request's limits across two slots, taken
    in the round it is called in, part by part (BatchedRedisStorage.acquire_across_slots),
    so that a cached principal's quotas are taken ahead on a Cluster too."""

    def __init__(self, storage):
        self.storage = storage

    def parts(self, limits):
        return self.storage.parts(limits)

    def joined(self, limits, got):
        return self.storage.joined(limits, got)


class GivingBack:
    """A kind of redis_store.SharedRoundTrips: units taken and not used, returned."""
    script = GIVE_BACK_SCRIPT

    def __init__(self, storage, script_sha):
        self.storage = storage
        self.script_sha = script_sha

    def slot_key(self, returned):
        return self.storage.operands_of(returned[0])[0][0]

    def command(self, returns):
        keys, ttls = [], []
        for limits, acquisition in returns:
            keys += self.storage.operands_of(limits)[0]
            ttls += acquisition.windows.counts[4::5]   # each current window's TTL, in ms
        return ("EVALSHA", self.script_sha, len(keys), *keys, *ttls)

    @staticmethod
    def answers(returns, command, reply):
        return [reply] * len(returns)


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
            return Acquisition(allowed, windows, [window.used for window in windows])
