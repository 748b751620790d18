"""Generation tokens per (namespace), (namespace, company) and (namespace, company, user).

A token is random, never a counter: when Redis restarts empty or evicts a token, the
next reader creates a fresh one instead of counting up again from a value that old
entries (still alive in some worker's L1) were stored under.
"""
import itertools
import secrets

from ..redis_store import is_cluster, is_sentinel_managed, write_kept


def new_token():
    return secrets.token_hex(6)


class NewTokens:
    """A kind of the worker's shared round trips (redis_store.SharedRoundTrips): the
    invalidations of a round replace their tokens in one MSET, sent with the other
    requests' calls instead of through a pipeline on a pooled connection of its own."""

    @staticmethod
    def command(key_lists):
        keys = sorted(set().union(*key_lists))
        return ("MSET", *(part for key in keys for part in (key, new_token())))

    @staticmethod
    def answers(key_lists, command, reply):
        return [reply] * len(key_lists)

    @staticmethod
    def slot_key(keys):
        return keys[0]   # an event's keys share its company's


NEW_TOKENS = NewTokens()


class RedisGenerations:
    """Tokens in Redis, shared by every worker and instance."""

    def __init__(self, client, reads, round_trips=None):
        self.client = client
        self.reads = reads   # redis_store.BatchedReads, shared with the worker's other small reads
        # invalidations go in the worker's shared round trips, except across slots on a
        # Cluster and on Sentinel, where a write must outlive a failover (write_kept); the
        # client's topology is fixed, so this is decided once
        self.round_trips = (round_trips if round_trips is not None
                            and not (is_cluster(client) or is_sentinel_managed(client)) else None)
        # invalidations that could not be written (Redis down), replayed before the next read;
        # key -> sequence, so a key deferred again during a replay stays pending
        self.pending = {}
        self.sequence = itertools.count()

    def read(self, keys):
        """Current tokens for ``keys``, creating missing ones; one round trip in the common case."""
        if self.pending:
            self.replay_pending()
        values = self.reads.read(keys)
        if None in values:
            pipe = self.client.pipeline(transaction=False)
            for key, value in zip(keys, values):
                if value is None:
                    pipe.set(key, new_token(), nx=True)  # concurrent creators agree on the first
            for key in keys:   # GETs, not one MGET: a Cluster pipeline refuses MGET
                pipe.get(key)
            values = pipe.execute()[-len(keys):]
        return [value.decode() for value in values]

    def replay_pending(self):
        """Write the invalidations Redis missed, before anything is read."""
        replaying = dict(self.pending)
        pipe = self.client.pipeline(transaction=False)
        for key in sorted(replaying):
            pipe.set(key, new_token())
        pipe.execute()
        for key, sequence in replaying.items():
            if self.pending.get(key) == sequence:
                del self.pending[key]

    def defer(self, keys):
        for key in keys:
            self.pending[key] = next(self.sequence)

    def bump(self, keys):
        """Replace the tokens; on failure they are remembered and replayed by the next read."""
        if not keys:
            return
        try:
            if self.round_trips is not None:
                self.round_trips.call(NEW_TOKENS, tuple(keys))
            else:
                write_kept(self.client, lambda pipe: [pipe.set(key, new_token()) for key in keys])
        except Exception:
            self.defer(keys)
            raise


class LocalGenerations:
    """Tokens in this process, for the embedded single-process default (no REDIS_URL)."""

    def __init__(self):
        self.tokens = {}

    def read(self, keys):
        return [self.tokens.setdefault(key, new_token()) for key in keys]

    def bump(self, keys):
        for key in keys:
            self.tokens[key] = new_token()

    defer = bump  # nothing can be unreachable in the process
