"""Invalidation: domain events (after commit) and admin purges replace generation tokens.

An event invalidates, for its company, every namespace its rules name (with cascades).
In a ``user_scoped`` namespace an event that names a user invalidates only that user's
entries. A purge names its companies (every company's, for a purge of all).
"""
import logging

from .guard import REDIS_FAULTS
from .keys import PUBLIC_COMPANY, company_generation_key, user_generation_key, user_scope_of_event

log = logging.getLogger("gateway.cache")


class CacheUnavailable(Exception):
    """The shared store could not record a purge."""


class Invalidator:
    def __init__(self, rules, tiers, metrics):
        self.rules = rules
        self.tiers = tiers
        self.metrics = metrics
        # (namespace, cause) -> its invalidations counter: labels() looks the child up
        # under a lock on every call, once per namespace of every write's event
        self.counted = {}

    def count(self, namespace, cause):
        counter = self.counted.get((namespace, cause))
        if counter is None:
            counter = self.counted[namespace, cause] = self.metrics["invalidations"].labels(namespace, cause)
        counter.inc()

    def user_scoped(self, namespace):
        return self.tiers.namespaces[namespace].get("user_scoped", False)

    def keys_for_event(self, event, namespaces):
        keys = []
        for namespace in namespaces:
            if event.user_id is not None and self.user_scoped(namespace):
                keys.append(user_generation_key(namespace, event.company_id,
                                                user_scope_of_event(event.user_id)))
            else:
                keys.append(company_generation_key(namespace, event.company_id))
        return keys

    def on_event(self, event):
        namespaces = self.rules.namespaces_for_event(event.name)
        if not namespaces:
            return
        keys = self.keys_for_event(event, namespaces)
        if not self.write_or_defer(keys):
            # written before this process reads tokens again; until then every process
            # either bypasses or has not noticed the outage (README, consistency guarantee)
            log.warning("cache: invalidation of %s for company %s queued until Redis answers",
                        ",".join(namespaces), event.company_id)
        for namespace in namespaces:
            self.count(namespace, event.name)

    def write_or_defer(self, keys):
        """True once written; False when Redis is (or was just found) unreachable."""
        if not self.tiers.guard.available():
            self.tiers.generations.defer(keys)
            return False
        try:
            self.tiers.generations.bump(keys)   # defers the keys itself when it fails
        except REDIS_FAULTS as exc:
            self.tiers.guard.failed("invalidate", exc)
            return False
        return True

    def purge(self, namespaces, company_ids, public=False):
        """Invalidate ``namespaces`` for ``company_ids`` (and the anonymous entries if ``public``)."""
        companies = [*company_ids, *([PUBLIC_COMPANY] if public else [])]
        keys = [company_generation_key(namespace, company) for namespace in namespaces for company in companies]
        if not self.write_or_defer(keys):
            raise CacheUnavailable("Redis is unreachable; the purge is queued in this process")
        for namespace in namespaces:
            self.count(namespace, "admin.purge")
