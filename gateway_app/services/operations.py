"""Operator actions and views, shared by the admin API (/gateway/admin) and the console
(/gateway/console): one implementation each, so the two can never disagree on what
forcing a breaker or purging a namespace means, and both write the same audit rows.

Each action raises ``OperationRefused`` (a status and a detail) for a request that
names nothing real; the admin API turns it into a problem, the console into a message.
"""
from flask import current_app
from sqlalchemy import func, select, update

from ..audit import audit
from ..cache import CacheUnavailable
from ..db import Session, utcnow
from ..extensions import gateway_state
from ..models import ApiKey, Company, OutboxMessage, User
from ..ratelimit import LAYERS

RETRY_BATCH = 500   # dead messages retried by one action: bounded, as the update is one statement


class OperationRefused(Exception):
    def __init__(self, status, detail, **fields):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = fields


# -- circuit breakers ----------------------------------------------------------------------
def breaker_registry():
    return gateway_state().breakers


def describe_breakers():
    registry = breaker_registry()
    return [registry.get(name).describe() for name in registry.known()]


def force_breaker(service, state, via):
    """Force ``service``'s breaker ``state`` ("open" or "closed"); audited."""
    registry = breaker_registry()
    if service not in registry.known():
        raise OperationRefused(404, f"No circuit breaker named {service!r}; known: {', '.join(registry.known())}.")
    if state not in ("open", "closed"):
        raise OperationRefused(422, "A breaker can be forced 'open' or 'closed'.")
    breaker = registry.get(service)
    if state == "open":
        breaker.open()
    else:
        breaker.close()
    audit(Session, "admin.breaker.forced", "breaker", service, state=state, via=via)
    Session.commit()
    return breaker.describe()


# -- response cache ------------------------------------------------------------------------
def caching_stage():
    return gateway_state().pipeline.stage("caching")


def cache_namespaces():
    return list(caching_stage().rules.namespaces)


def purge_cache(namespace, pattern, company_id, via):
    """Invalidate a namespace, a pattern's namespaces, or all (both None), optionally for one
    company; audited. Raises CacheUnavailable when Redis did not take the purge."""
    rules = caching_stage().rules
    if namespace is not None and namespace not in rules.namespaces:
        raise OperationRefused(422, f"Unknown namespace {namespace!r}; known: {', '.join(rules.namespaces)}.")
    namespaces = rules.select(namespace, pattern)
    if not namespaces:
        raise OperationRefused(422, "The namespace and pattern select no namespace together.")
    # the audit row names the company: one that does not exist is refused, not a 500
    if company_id is not None and Session.get(Company, company_id) is None:
        raise OperationRefused(404, f"No company with id {company_id}.")
    if company_id is None:   # every company's tokens: there is no global one (cache/keys.py)
        caching_stage().invalidator.purge(namespaces, Session.scalars(select(Company.id)).all(), public=True)
    else:
        caching_stage().invalidator.purge(namespaces, [company_id])
    audit(Session, "admin.cache.purged", "cache", namespace or pattern or "*",
          company_id=company_id, namespaces=namespaces, via=via)
    Session.commit()
    return {"namespaces": namespaces, "company_id": company_id}


# -- rate limits -----------------------------------------------------------------------------
def reset_rate_limit(layer, key, via):
    """Forget ``key``'s counts in ``layer``; audited. Returns the policy names cleared."""
    if layer not in LAYERS:
        raise OperationRefused(404, f"Unknown rate-limit layer {layer!r}; expected one of {', '.join(LAYERS)}.")
    cleared = gateway_state().pipeline.stage("rate_limiting").reset(layer, key, principal_company(layer, key))
    if not cleared:
        raise OperationRefused(404, f"{key!r} is not a key of the {layer} layer.")
    audit(Session, "admin.rate_limit.reset", "rate_limit", f"{layer}:{key}"[:100],
          layer=layer, key=key, cleared=cleared, via=via)
    Session.commit()
    return cleared


def principal_company(layer, key):
    """The company of the user or API key a user- or endpoint-layer key names (its counts
    are kept under the company's hash tag), or None."""
    if layer not in ("user", "endpoint"):
        return None
    kind, _, rest = key.partition(":")
    number = rest.partition(":")[0]
    model = {"user": User, "key": ApiKey}.get(kind)
    if model is None or not number.isdigit():
        return None
    return Session.scalar(select(model.company_id).where(model.id == int(number)))


# -- outbox ------------------------------------------------------------------------------------
def outbox_summary():
    """Messages by status, the oldest pending one's age in seconds, and the dead ones (newest first)."""
    counts = dict(Session.execute(select(OutboxMessage.status, func.count())
                                  .group_by(OutboxMessage.status)).all())
    oldest = Session.scalar(select(func.min(OutboxMessage.next_attempt_at))
                            .where(OutboxMessage.status == "pending"))
    dead = Session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")
                           .order_by(OutboxMessage.id.desc()).limit(20)).all()
    now = utcnow()
    return {
        "pending": counts.get("pending", 0), "dead": counts.get("dead", 0), "done": counts.get("done", 0),
        "oldest_pending_seconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
        "dead_messages": [{"id": m.id, "kind": m.kind, "company_id": m.company_id, "attempts": m.attempts,
                           "last_error": (m.last_error or "")[:300],
                           "failed_at": m.completed_at.isoformat() if m.completed_at else None}
                          for m in dead],
    }


def retry_dead_messages(message_ids, via):
    """Put dead messages back in the queue, due now with their attempts reset (all dead
    ones, up to RETRY_BATCH, when ``message_ids`` is None); audited. Returns their ids."""
    query = select(OutboxMessage.id).where(OutboxMessage.status == "dead")
    if message_ids is not None:
        query = query.where(OutboxMessage.id.in_(list(message_ids)))
    ids = Session.scalars(query.order_by(OutboxMessage.id).limit(RETRY_BATCH)).all()
    if message_ids is not None and set(message_ids) - set(ids):
        missing = sorted(set(message_ids) - set(ids))
        raise OperationRefused(404, f"No dead outbox message with id {', '.join(map(str, missing))}.")
    if not ids:
        return []
    # status in the WHERE clause: a message a concurrent retry already revived is left alone
    Session.execute(update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "dead")
                    .values(status="pending", attempts=0, next_attempt_at=utcnow(),
                            locked_until=None, completed_at=None))
    audit(Session, "admin.outbox.retried", "outbox", ",".join(map(str, ids))[:100], ids=list(ids), via=via)
    Session.commit()
    return list(ids)


# -- services and their instances ----------------------------------------------------------
def discovery_stage():
    return current_app.extensions["gateway"].pipeline.stage("service_discovery")


def describe_service(registry, service):
    health = registry.health(service)
    instances = []
    for instance in registry.instances(service):
        checked = health.get(instance.id)
        instances.append({
            "id": instance.id, "address": instance.address, "url": instance.url,
            "check": instance.check,
            "source": instance.source,
            "healthy": checked.healthy if checked else False,
            "checked_at": checked.checked_at if checked else None,
            "detail": checked.detail if checked else "not checked yet: takes no traffic until a check passes"})
    return {"service": service, "version": registry.versions[service],
            "mode": "remote" if instances else "local", "instances": instances}


def describe_services():
    registry = discovery_stage().registry
    return [describe_service(registry, service) for service in registry.versions]


__all__ = ["OperationRefused", "CacheUnavailable", "describe_breakers", "force_breaker",
           "cache_namespaces", "purge_cache", "reset_rate_limit", "outbox_summary",
           "retry_dead_messages", "describe_service", "describe_services"]
