"""One Redis round trip for "is this request's cached state still current".

On a warm request two stages check cached state against small Redis keys: the
authentication stage compares a cached principal's versions, the caching stage reads
its namespace's generation tokens. Neither needs the other's answer, so the
authentication stage reads, in its own MGET, the keys the later stages declare, and
they take the values from here instead of asking Redis again.

Declaring: a stage defines ``shared_read_keys(ctx, request, principal)`` returning the
Redis keys it will read for this request once ``principal`` is known (the pipeline
asks every stage that defines it). Taking: the stage calls ``ctx.shared_reads.take(keys)``,
which answers the raw values read during this request, or None when they were not all
read (no cached principal, store unreachable, a key absent) - the stage then reads them
itself as before. Every value was read by Redis after the request started, which is
the guarantee the consumers rely on.
"""


class SharedReads:
    __slots__ = ("declare", "values")

    def __init__(self, declare=None):
        self.declare = declare      # principal -> Redis keys later stages will read
        self.values = {}

    def keys_for(self, principal):
        return self.declare(principal) if self.declare is not None else []

    def record(self, keys, values):
        self.values.update(zip(keys, values))

    def take(self, keys):
        found = [self.values.get(key) for key in keys]
        return None if None in found else found
