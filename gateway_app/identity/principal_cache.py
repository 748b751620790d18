"""The resolved-Principal cache (the seed's "user session data"), with versioned invalidation.

A warm request must not touch the database, yet a tier change (admin API) must apply
to the very next request and a role change, revocation or logout promptly, in every
worker. So each cached entry records the company's and the user's *version* as they
were read before the database was; changing a company or a user increments its
version in the shared store, and an entry whose recorded versions differ from the
current ones is a miss. A warm lookup is one MGET of two small keys (plus one GET
when the entry is not in this worker's L1), shared by the worker's concurrent requests;
the caller may add Redis calls to that round trip (the authentication stage adds the
calls later stages make ahead, so a warm request goes to Redis once).

When the store is unreachable nothing is served from cache (every lookup resolves
from the database) and a missed version bump can leave an entry stale for at most
``ttl`` seconds - the bound README states.
"""
import dataclasses
import json
import logging
import time

from cachetools import TTLCache

from ..context import Principal
from ..locks import section_lock
from .store import StoreUnavailable

log = logging.getLogger("gateway.identity")


# A principal's two versions share its company's hash tag with the company's cache
# generations, so a request's shared read is one MGET on one Cluster node (docs/redis-keys.md).
def _company_version_key(company_id):
    return f"ver:{{c{company_id}}}:c"


def _user_version_key(company_id, user_id):
    return f"ver:{{c{company_id}}}:u:{user_id}"


class LocalEntries:
    """This worker's L1: credential key -> (principal, versions), for ``ttl`` seconds;
    the least recently used entry is dropped first."""

    def __init__(self, ttl, max_entries=10000, clock=time.monotonic):
        self.entries = TTLCache(maxsize=max_entries, ttl=ttl, timer=clock)
        self.lock = section_lock()   # cachetools' caches are not thread-safe

    def get(self, key):
        with self.lock:
            return self.entries.get(key)

    def put(self, key, entry):
        with self.lock:
            self.entries[key] = entry

    def drop(self, key):
        with self.lock:
            self.entries.pop(key, None)


def decoded_entry(raw):
    """(Principal, versions) from a stored entry; the worker's L1 keeps this form."""
    entry = json.loads(raw)
    principal = entry["principal"]
    return Principal(**{**principal, "scopes": tuple(principal["scopes"]),
                        "timezone": entry.get("timezone")}), entry["versions"]


def encoded_entry(principal, versions):
    """The stored form of (principal, versions). The timezone sits beside the principal's
    fields, not among them: a worker of the release before, which makes its Principal of
    exactly those fields, can still read an entry this one wrote (and this one reads
    theirs, without a timezone, as one to look up)."""
    fields = dataclasses.asdict(principal)
    timezone = fields.pop("timezone")
    return json.dumps({"principal": fields, "versions": list(versions), "timezone": timezone})


class PrincipalCache:
    def __init__(self, store, ttl, local=None):
        self.store = store
        self.ttl = ttl
        self.local = local  # None when the store itself is in-process

    # -- versions ---------------------------------------------------------------------------
    def current_versions(self, company_id, user_id):
        """(company version, user version) now, or None when the store is unreachable."""
        try:
            return tuple(self.store.mget([_company_version_key(company_id),
                                          _user_version_key(company_id, user_id)]))
        except StoreUnavailable:
            return None

    def bump_company(self, company_id):
        """Every cached principal of this company becomes a miss (tier change, key revoked)."""
        self._bump(_company_version_key(company_id))

    def bump_user(self, company_id, user_id):
        """Every cached principal of this user becomes a miss (role, password, logout)."""
        self._bump(_user_version_key(company_id, user_id))

    def _bump(self, key):
        try:
            self.store.incr(key, kept=True)
        except StoreUnavailable:
            log.warning("principal cache version bump failed; cached entries expire within %ss",
                        self.ttl)

    # -- entries ----------------------------------------------------------------------------
    def get(self, credential_key, ahead=None):
        """``(principal, answers)``: the cached principal if its versions are current
        (else None), and the answers of the Redis calls ``ahead(candidate)`` asks for,
        made in the round trip that reads the versions (None where a call was not made)."""
        if self.ttl <= 0:
            return None, []
        try:
            found = self.local.get(credential_key) if self.local else None
            if found is None:
                raw = self.store.get("principal:" + credential_key)
                if raw is None:
                    return None, []
                found = decoded_entry(raw)
                if self.local:
                    self.local.put(credential_key, found)
            candidate, versions = found
            calls = ahead(candidate) if ahead is not None else ()
            current, answers = self.store.read_versions(
                [_company_version_key(candidate.company_id),
                 _user_version_key(candidate.company_id, candidate.user_id)], calls)
            if current != versions:
                self.forget(credential_key)
        except StoreUnavailable:
            return None, []
        return (candidate if current == versions else None), answers

    def forget(self, credential_key):
        """Drop an out-of-date entry, so that a credential that is no longer valid (a
        revoked key still configured somewhere) is not a candidate again and again."""
        if self.local:
            self.local.drop(credential_key)
        self.store.delete("principal:" + credential_key)

    def put(self, credential_key, principal, versions):
        """``versions`` must have been read BEFORE the database, so a change committed
        in between leaves an entry that is already out of date."""
        if self.ttl <= 0 or versions is None:
            return
        try:
            self.store.set("principal:" + credential_key, encoded_entry(principal, versions), self.ttl)
        except StoreUnavailable:
            return
        if self.local:
            self.local.put(credential_key, (principal, list(versions)))
