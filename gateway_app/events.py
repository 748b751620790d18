"""Domain events (calls.created, appointments.updated, ...), delivered after commit.

Services call ``emit`` inside their unit of work (a session, or a ``core_write``);
subscribers (the caching stage's invalidation) only hear of it once the transaction has
committed, and never if it rolled back, so no reader can see an invalidation for data
that does not exist.
"""
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession

from .db import Session, bound_engine

log = logging.getLogger("gateway.events")
_PENDING = "gateway_pending_events"
_SAVEPOINT_MARKS = "gateway_savepoint_event_marks"


@dataclass(frozen=True)
class DomainEvent:
    name: str
    company_id: int
    user_id: int | None = None
    data: tuple = ()


def subscribe(app, handler):
    """Subscribers belong to one app, so test apps built side by side never cross-talk."""
    app.extensions.setdefault("gateway_event_subscribers", []).append(handler)
    return handler


def emit(session, name, company_id, user_id=None, **data):
    """An event of the unit of work ``session`` (a session or a CoreWrite)."""
    session.info.setdefault(_PENDING, []).append(
        DomainEvent(name, company_id, user_id, tuple(sorted(data.items()))))


class CoreWrite:
    """A write made of Core statements: its ``connection``, and ``info``, where ``emit``
    keeps the write's events (a session's own when the write joins a session)."""

    def __init__(self, connection, info):
        self.connection = connection
        self.info = info


def core_write():
    """The unit of work of a write made of Core statements, committed when the block ends
    (rolled back if it raises), its events published once it has committed. In a request
    that already has a session (the authentication stage read a credential), the
    session's transaction, as for reads (db.read_connection); otherwise a connection of
    its own: no ORM session set up and torn down around the statements."""
    return _session_write(Session()) if Session.registry.has() else _connection_write(bound_engine())


@contextmanager
def _session_write(session):
    try:
        yield CoreWrite(session.connection(), session.info)
        session.commit()   # its events go out in _deliver_after_commit
    except BaseException:
        session.rollback()
        raise


@contextmanager
def _connection_write(engine):
    with engine.connect() as connection:   # closing it rolls back what was not committed
        write = CoreWrite(connection, {})
        yield write
        connection.commit()
    for domain_event in write.info.get(_PENDING, ()):
        publish(domain_event)


def publish(domain_event):
    if not has_app_context():
        log.warning("event outside an app context dropped", extra={"event": domain_event.name})
        return
    for handler in current_app.extensions.get("gateway_event_subscribers", []):
        try:
            handler(domain_event)
        except Exception:  # a failing subscriber must not undo a committed write
            log.exception("event subscriber failed", extra={"event": domain_event.name})


@sa_event.listens_for(OrmSession, "after_commit")
def _deliver_after_commit(session):
    if session.get_nested_transaction() is not None:
        return  # a SAVEPOINT released (SQLAlchemy calls that a commit too): not durable yet
    pending = session.info.pop(_PENDING, [])
    for domain_event in pending:
        publish(domain_event)


@sa_event.listens_for(OrmSession, "after_transaction_create")
def _mark_savepoint(session, transaction):
    if transaction.nested:
        session.info.setdefault(_SAVEPOINT_MARKS, {})[transaction] = \
            len(session.info.get(_PENDING, []))


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _forget_savepoint(session, transaction):
    session.info.get(_SAVEPOINT_MARKS, {}).pop(transaction, None)


@sa_event.listens_for(OrmSession, "after_rollback")
def _drop_on_rollback(session):
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(_PENDING, None)
        return
    # a rolled-back SAVEPOINT drops only its own events; the enclosing transaction's stay
    mark = session.info.get(_SAVEPOINT_MARKS, {}).get(savepoint, 0)
    del session.info.get(_PENDING, [])[mark:]
