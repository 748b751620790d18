"""Generation tokens per (namespace), (namespace, company) and (namespace, company, user).

A token is random, never a counter: when Redis restarts empty or evicts a token, the
next reader creates a fresh one instead of counting up again from a value that old
entries (still alive in some worker's L1) were stored under.
"""
import secrets


def new_token():
    return secrets.token_hex(6)


class RedisGenerations:
    """Tokens in Redis, shared by every worker and instance."""

    def __init__(self, client):
        self.client = client
        # invalidations that could not be written (Redis down), replayed before the next read
        self.pending = set()

    def read(self, keys):
        """Current tokens for ``keys``, creating missing ones; one round trip in the common case."""
        pipe = self.client.pipeline(transaction=False)
        replaying = sorted(self.pending)
        for key in replaying:
            pipe.set(key, new_token())
        pipe.mget(keys)
        values = pipe.execute()[-1]
        self.pending.difference_update(replaying)
        missing = [key for key, value in zip(keys, values) if value is None]
        if missing:
            pipe = self.client.pipeline(transaction=False)
            for key in missing:
                pipe.set(key, new_token(), nx=True)  # concurrent creators agree on the first
            pipe.mget(keys)
            values = pipe.execute()[-1]
        return [value.decode() for value in values]

    def bump(self, keys):
        """Replace the tokens; on failure they are remembered and replayed by the next read."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, new_token())
            pipe.execute()
        except Exception:
            self.pending.update(keys)
            raise


class LocalGenerations:
    """Tokens in this process, for the embedded single-process default (no REDIS_URL)."""

    def __init__(self):
        self.tokens = {}
        self.pending = set()

    def read(self, keys):
        return [self.tokens.setdefault(key, new_token()) for key in keys]

    def bump(self, keys):
        for key in keys:
            self.tokens[key] = new_token()
