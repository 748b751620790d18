"""The audit log: who changed what, when, from where, under which request id."""
from flask import g, has_request_context
from sqlalchemy import insert

from .models import AuditLog


def audit(session, action, target_type=None, target_id=None, company_id=None, **details):
    """Add an audit row to ``session`` (committed with the change it records)."""
    row = AuditLog(**audit_fields(action, target_type, target_id, company_id, details))
    session.add(row)
    return row


def audit_inserted(connection, action, target_type=None, target_id=None, company_id=None, **details):
    """The same row inserted at once on ``connection`` (the session's, so it commits with
    the change), for write paths that change rows with Core: no ORM instance to flush."""
    connection.execute(_INSERT, audit_fields(action, target_type, target_id, company_id, details))


_INSERT = insert(AuditLog.__table__)


def audit_fields(action, target_type, target_id, company_id, details):
    ctx = g.get("gateway") if has_request_context() else None
    principal = ctx.principal if ctx else None
    return {
        "company_id": company_id if company_id is not None else (principal.company_id if principal else None),
        "user_id": principal.user_id if principal else None,
        "api_key_id": principal.api_key_id if principal else None,
        "action": action, "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "details": details or None,
        "ip": ctx.client_ip if ctx else None,
        "request_id": ctx.request_id if ctx else None,
    }
