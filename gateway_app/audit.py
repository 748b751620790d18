"""The audit log: who changed what, when, from where, under which request id."""
from flask import g, has_request_context

from .models import AuditLog


def audit(session, action, target_type=None, target_id=None, company_id=None, **details):
    """Add an audit row to ``session`` (committed with the change it records)."""
    ctx = g.get("gateway") if has_request_context() else None
    principal = ctx.principal if ctx else None
    row = AuditLog(
        company_id=company_id if company_id is not None else (principal.company_id if principal else None),
        user_id=principal.user_id if principal else None,
        api_key_id=principal.api_key_id if principal else None,
        action=action, target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or None,
        ip=ctx.client_ip if ctx else None,
        request_id=ctx.request_id if ctx else None,
    )
    session.add(row)
    return row
