"""Cache keys: who an entry belongs to, which request it answers, under which generations.

An entry key embeds the generation tokens of its namespace (per company and, for
per-user entries, per user). Invalidating means replacing a token, so every key built
under the old token becomes unreachable at once, in every worker and instance, without
finding or deleting the entries themselves. A purge of every company replaces every
company's token: no token is read by every company's requests, so none sits on one
Redis Cluster node, and a request's tokens share its company's hash tag (one MGET on
one node; docs/redis-keys.md).
"""
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl


GENERATION_PREFIX = "gw:cache:gen"
PUBLIC_COMPANY = "public"


def company_generation_key(namespace, company):
    return f"{GENERATION_PREFIX}:{{c{company}}}:{namespace}"


def user_generation_key(namespace, company, user):
    return f"{GENERATION_PREFIX}:{{c{company}}}:{namespace}:{user}"


def user_scope_of_event(user_id):
    """The user part of a per-user scope, as Principal.rate_key spells it for users."""
    return f"user:{user_id}"


@dataclass(frozen=True)
class CacheScope:
    """The namespace, company and (for per-user entries) principal an entry belongs to."""
    namespace: str
    company: str
    user: str | None = None
    # the Redis keys of its generation tokens: company and (per-user entries) user
    generation_keys: tuple = field(init=False, compare=False, repr=False)
    owner: str = field(init=False, compare=False, repr=False)   # what entry keys start with

    def __post_init__(self):
        keys = (company_generation_key(self.namespace, self.company),)
        if self.user is not None:
            keys += (user_generation_key(self.namespace, self.company, self.user),)
        object.__setattr__(self, "generation_keys", keys)
        object.__setattr__(self, "owner", f"{self.namespace}:{self.company}:{self.user or '-'}")

    @classmethod
    def of(cls, namespace, principal, per_user):
        """The scope, made once per (namespace, principal, per_user) and kept."""
        return _scope_of(namespace, principal, per_user)

    @classmethod
    def made_for(cls, namespace, principal, per_user):
        if principal is None:
            return cls(namespace, PUBLIC_COMPANY)
        return cls(namespace, str(principal.company_id), principal.rate_key if per_user else None)


def request_fingerprint(request):
    """Which request an entry answers: the path and the query with its parameters sorted
    (so ?a=1&b=2 and ?b=2&a=1 share an entry), hashed."""
    return _fingerprint_of(request.path, request.environ.get("QUERY_STRING", ""))


@lru_cache(maxsize=10_000)
def _fingerprint_of(path, query_string):
    # parsing and sorting the query is most of the cost, and the same few URLs are asked
    # for over and over. The environ holds the query's bytes as latin-1; undecodable
    # bytes stay distinct (surrogateescape), so distinct queries never share an entry.
    text = query_string.encode("latin-1").decode("utf-8", "surrogateescape")
    pairs = sorted(parse_qsl(text, keep_blank_values=True, errors="surrogateescape"))
    return hashlib.sha256(repr((path, pairs)).encode("utf-8", "surrogateescape")).hexdigest()[:40]


# every warm request of a caller asks for its scope
_scope_of = lru_cache(maxsize=10_000)(CacheScope.made_for)


def entry_key(scope, generations, fingerprint):
    return f"e:{scope.owner}:{'.'.join(generations)}:{fingerprint}"


def stale_key(scope, fingerprint):
    """The last good copy of a request: no generations, so it outlives invalidation."""
    return f"s:{scope.owner}:{fingerprint}"
