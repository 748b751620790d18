"""Which quotas apply to a request: the seed's five layers read from gateway.yaml.

A quota's storage key names its policy, window and subject but not its size, so a tier
change applies the new size to the counts already made (the next request sees it). It
starts with its owner's hash tag, the company for every layer an authenticated request
spends but the address one, so that a request's company quotas are one script call on
one Redis Cluster node, and companies spread over the slots (docs/redis-keys.md).
"""
from functools import lru_cache
from typing import NamedTuple

from limits import parse as parse_rate
from marshmallow import Schema, fields

from ..policy_types import positive, strict
from .headers import policy_header

LAYERS = ("ip", "user", "company", "endpoint", "resource")
TIER_SCALED = ("company", "endpoint", "resource")
QUOTA_SETS = 10_000   # distinct callers whose quota sets are kept


class Quota(NamedTuple):
    """Immutable; a NamedTuple because every rate-limited request builds one per layer."""
    layer: str        # ip | user | company | endpoint | resource
    name: str         # the policy name in RateLimit-Policy ("ip", "burst", "user", ...)
    subject: str      # whose budget: an IP, "user:7", a company id, "user:7:billing", "3:bookings"
    limit: int
    window: int       # seconds
    owner: str        # the hash tag: "ip:<address>" or "c<company id>"

    @property
    def key(self):
        return f"{{{self.owner}}}gateway/{self.name}/{self.window}/{self.subject}"

    def storage_entry(self):
        return self.key, self.limit, self.window


class QuotaSet(NamedTuple):
    """The quotas one request spends, with what is derived from them alone: the same
    callers send the same sets again and again, so each distinct set is built once."""
    quotas: tuple
    entries: tuple        # (key, limit, window) per quota: what the storages take
    limits: tuple         # each quota's limit
    policy_header: str    # RateLimit-Policy, fixed by the quotas

    @classmethod
    def of(cls, quotas):
        quotas = tuple(quotas)
        return cls(quotas, tuple(quota.storage_entry() for quota in quotas),
                   tuple(quota.limit for quota in quotas), policy_header(quotas))


def _rate(text):
    item = parse_rate(text)
    return item.amount, item.get_expiry()


@strict
class TierSchema(Schema):
    multiplier = fields.Integer(required=True, validate=positive)


class LayerPolicies:
    """The rate_limiting section as quotas; ``for_request`` picks the ones a request spends."""

    def __init__(self, section, tiers):
        layers = section["layers"]
        self.tiers = {name: tier["multiplier"] for name, tier in tiers.items()}
        self.fixed = {}   # layer -> [(policy name, amount, window)] for ip, user, company
        for layer in ("ip", "user", "company"):
            names = layers[layer].get("names") or []
            self.fixed[layer] = [
                (names[i] if i < len(names) else (layer if i == 0 else f"{layer}-{i + 1}"), *_rate(text))
                for i, text in enumerate(layers[layer]["limits"])]
        self.services = {name: _rate(text) for name, text in layers["endpoint"]["services"].items()}
        self.resources = {name: _rate(text) for name, text in layers["resource"]["resources"].items()}
        # (client address, principal, service, resource) -> QuotaSet: the same callers
        # come again and again
        self.quota_set = lru_cache(maxsize=QUOTA_SETS)(
            lambda *caller: QuotaSet.of(self.quotas_for(*caller)))
        # address -> the quota only its wrong admin tokens spend (the admin API is not
        # otherwise limited, and an address's ordinary traffic must not lock it out)
        amount, window = _rate(section["admin_refusals"])
        self.admin_refusals = lru_cache(maxsize=QUOTA_SETS)(lambda address: QuotaSet.of(
            [Quota("ip", "admin_refusals", f"admin:{address or 'unknown'}", amount, window,
                   address_owner(address))]))

    def multiplier(self, tier):
        return self.tiers.get(tier, self.tiers["free"])

    def for_request(self, ctx):
        """The QuotaSet ``ctx``'s request spends."""
        return self.quota_set(ctx.client_ip, ctx.principal, ctx.service,
                              ctx.route_policy.get("resource"))

    def quotas_for(self, client_ip, principal, service, resource):
        owner = address_owner(client_ip)
        quotas = [Quota("ip", name, client_ip or "unknown", amount, window, owner)
                  for name, amount, window in self.fixed["ip"]]
        if principal is None:
            return quotas
        scale = self.multiplier(principal.tier)
        owner = company_owner(principal.company_id)
        quotas += [Quota("user", name, principal.rate_key, amount, window, owner)
                   for name, amount, window in self.fixed["user"]]
        quotas += [Quota("company", name, str(principal.company_id), amount * scale, window, owner)
                   for name, amount, window in self.fixed["company"]]
        if service in self.services:
            amount, window = self.services[service]
            quotas.append(Quota("endpoint", "endpoint", f"{principal.rate_key}:{service}",
                                amount * scale, window, owner))
        if resource in self.resources:
            amount, window = self.resources[resource]
            quotas.append(Quota("resource", "resource", f"{principal.company_id}:{resource}",
                                amount * scale, window, owner))
        return quotas

    def for_subject(self, layer, subject, company_id=None):
        """Every quota of ``layer`` kept for ``subject`` (admin reset); [] if none can exist.
        ``company_id``: the company ``subject`` belongs to (layers but ip and company)."""
        if layer == "company":
            company_id = subject
        elif layer == "resource":
            company_id = subject.rpartition(":")[0]
        owner = address_owner(subject) if layer == "ip" else company_owner(company_id)
        if layer in self.fixed:
            return [Quota(layer, name, subject, amount, window, owner)
                    for name, amount, window in self.fixed[layer]]
        table = self.services if layer == "endpoint" else self.resources if layer == "resource" else {}
        _owner, _, kind = subject.rpartition(":")
        if not _owner or kind not in table:
            return []
        amount, window = table[kind]
        return [Quota(layer, layer, subject, amount, window, owner)]


def address_owner(address):
    return f"ip:{address or 'unknown'}"


def company_owner(company_id):
    return f"c{company_id}"
