"""Generation tokens per (namespace), (namespace, company) and (namespace, company, user).

A token is random, never a counter: when Redis restarts empty or evicts a token, the
next reader creates a fresh one instead of counting up again from a value that old
entries (still alive in some worker's L1) were stored under.
"""
import itertools
import secrets

from ..redis_store import BatchedReads


def new_token():
    return secrets.token_hex(6)


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
