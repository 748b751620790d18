"""One Redis round trip for "is this request's cached state still current".

On a warm request two stages check cached state against small Redis keys: the
authentication stage compares a cached principal's versions, the caching stage reads
its namespace's generation tokens. Neither needs the other's answer, so the
authentication stage reads, in its own MGET, the keys the later stages declare, and
they take the values from here instead of asking Redis again.

When the rate-limiting stage will call Redis for the request anyway (a limited route,
Redis reachable), even that MGET is saved: the authentication stage goes ahead with the
principal it cached and *defers* the check (``defer``), and the limiter's script
verifies the versions before it takes anything and reads the declared keys in the same
round trip. Until then the principal is unconfirmed: a stage that would refuse because
of it (authorization) raises PrincipalUnconfirmed instead, as does the limiter when the
versions changed or Redis could not tell, and the pipeline starts the request over with
the check made first. Nothing was taken from any quota by then.

Declaring: a stage defines ``shared_read_keys(ctx, request, principal)`` returning the
Redis keys it will read for this request once ``principal`` is known (the pipeline
asks every stage that defines it). Taking: the stage calls ``ctx.shared_reads.take(keys)``,
which answers the raw values read during this request, or None when they were not all
read (no cached principal, store unreachable, a key absent) - the stage then reads them
itself as before. Every value was read by Redis after the request started, which is
the guarantee the consumers rely on.
"""
from typing import NamedTuple


class PrincipalUnconfirmed(Exception):
    """The cached principal a request went ahead with changed, or could not be checked."""


class DeferredCheck(NamedTuple):
    check_keys: tuple     # Redis keys that must still hold ...
    expected: tuple       # ... these values (None: absent)
    read_keys: tuple      # keys later stages declared, read in the same round trip


class SharedReads:
    __slots__ = ("declare", "values", "may_defer", "deferred_check", "confirmed")

    def __init__(self, declare=None, may_defer=False):
        self.declare = declare      # principal -> Redis keys later stages will read
        self.values = {}
        self.may_defer = may_defer  # the rate limiter will check for the authentication stage
        self.deferred_check = None
        self.confirmed = False

    def keys_for(self, principal):
        return self.declare(principal) if self.declare is not None else []

    def record(self, keys, values):
        self.values.update(zip(keys, values))

    def take(self, keys):
        found = [self.values.get(key) for key in keys]
        return None if None in found else found

    def defer(self, check_keys, expected, read_keys):
        self.deferred_check = DeferredCheck(tuple(check_keys), tuple(expected), tuple(read_keys))

    def confirm(self, read_values):
        """The deferred check held; ``read_values`` are its read keys' values."""
        self.record(self.deferred_check.read_keys, read_values)
        self.confirmed = True

    @property
    def principal_unconfirmed(self):
        return self.deferred_check is not None and not self.confirmed
