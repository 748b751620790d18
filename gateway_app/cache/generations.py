"""Generation tokens per (namespace), (namespace, company) and (namespace, company, user).

A token is random, never a counter: when Redis restarts empty or evicts a token, the
next reader creates a fresh one instead of counting up again from a value that old
entries (still alive in some worker's L1) were stored under.
"""
import itertools
import secrets
import threading

from gevent import monkey
from gevent import sleep as gevent_sleep


def new_token():
    return secrets.token_hex(6)


class _Batch:
    def __init__(self):
        self.keys = set()
        self.done = threading.Event()
        self.values = None
        # what readers see if the leader never finishes (killed greenlet)
        self.error = ConnectionError("the shared generation read was abandoned")


class BatchedReads:
    """Concurrent reads of one worker share one MGET, never one sent before they arrived.

    The first reader waits one scheduler turn so readers already running (other gevent
    greenlets) can add their keys, closes the batch and fetches; readers arriving later
    start the next batch. Every reader therefore sees values read by Redis after it
    started, which is all consistency needs, and a busy worker pays far less than one
    round trip per request.
    """

    # a safety net only: the leader's fetch is bounded by the Redis socket timeout
    FOLLOWER_WAIT = 10.0

    def __init__(self, fetch):
        self.fetch = fetch              # sorted keys -> {key: token}
        self.lock = threading.Lock()
        self.open = None
        # with OS threads a yield costs a scheduler round and gathers nobody
        self.gevent = monkey.is_module_patched("threading")

    def read(self, keys):
        with self.lock:
            leader = self.open is None
            if leader:
                self.open = _Batch()
            batch = self.open
            batch.keys.update(keys)
        if leader:
            self.run(batch)
        elif not batch.done.wait(self.FOLLOWER_WAIT):
            raise TimeoutError("the shared generation read did not finish")
        if batch.error is not None:
            raise batch.error
        return [batch.values[key] for key in keys]

    def run(self, batch):
        try:
            if self.gevent:
                gevent_sleep(0)  # let the greenlets that are ready join this batch
            self.close(batch)
            batch.values = self.fetch(sorted(batch.keys))
            batch.error = None
        except Exception as exc:  # handed to every reader of the batch, who decide
            batch.error = exc
        finally:  # even when the leader is killed, no reader may join or wait for a dead batch
            self.close(batch)
            batch.done.set()

    def close(self, batch):
        with self.lock:
            if self.open is batch:
                self.open = None


class RedisGenerations:
    """Tokens in Redis, shared by every worker and instance."""

    def __init__(self, client):
        self.client = client
        # invalidations that could not be written (Redis down), replayed before the next read;
        # key -> sequence, so a key deferred again during a replay stays pending
        self.pending = {}
        self.sequence = itertools.count()
        self.batched = BatchedReads(self.fetch)

    def read(self, keys):
        """Current tokens for ``keys``, creating missing ones; one round trip in the common case."""
        return self.batched.read(keys)

    def tokens_read_early(self, values):
        """Tokens from values another round trip of this request read, or None when this
        worker still owes Redis invalidations (they must be written before any read)."""
        if self.pending:
            return None
        return [value.decode() for value in values]

    def fetch(self, keys):
        if self.pending:
            values = self.replay_pending_then_read(keys)
        else:
            values = self.client.mget(keys)
        missing = [key for key, value in zip(keys, values) if value is None]
        if missing:
            pipe = self.client.pipeline(transaction=False)
            for key in missing:
                pipe.set(key, new_token(), nx=True)  # concurrent creators agree on the first
            pipe.mget(keys)
            values = pipe.execute()[-1]
        return {key: value.decode() for key, value in zip(keys, values)}

    def replay_pending_then_read(self, keys):
        """Write the invalidations Redis missed, then read, in one round trip."""
        replaying = dict(self.pending)
        pipe = self.client.pipeline(transaction=False)
        for key in sorted(replaying):
            pipe.set(key, new_token())
        pipe.mget(keys)
        values = pipe.execute()[-1]
        for key, sequence in replaying.items():
            if self.pending.get(key) == sequence:
                del self.pending[key]
        return values

    def defer(self, keys):
        for key in keys:
            self.pending[key] = next(self.sequence)

    def bump(self, keys):
        """Replace the tokens; on failure they are remembered and replayed by the next read."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, new_token())
            pipe.execute()
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
