"""Refresh tokens: opaque, rotated on every use, with reuse detection per family.

Only the sha256 of a token is stored (in ``RefreshToken.jti``). Each login starts a
family; refreshing marks the presented token used and issues the next one of the
family. Presenting a token that was already used means it was copied: the whole
family is revoked, so both the thief and the victim must log in again.
"""
import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select, update

from ..db import utcnow
from ..models import RefreshToken, User


class RefreshError(Exception):
    pass


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session, user_id, ttl, family=None):
    """Add a new token row to ``session`` and return the token (shown to the client only)."""
    token = secrets.token_urlsafe(32)
    session.add(RefreshToken(jti=_digest(token), family=family or uuid.uuid4().hex,
                             user_id=user_id,
                             expires_at=utcnow() + dt.timedelta(seconds=ttl)))
    return token


def rotate(session, token, ttl):
    """Spend ``token``; return (user, next token). Raises RefreshError; the caller commits."""
    row = session.scalar(select(RefreshToken).where(RefreshToken.jti == _digest(token)))
    if row is None:
        raise RefreshError("unknown refresh token")
    if row.revoked_at is not None:
        raise RefreshError("refresh token revoked")
    if row.expires_at <= utcnow():
        raise RefreshError("refresh token expired")
    # Conditional update: of two concurrent uses exactly one wins, the other is a reuse.
    spent = session.execute(update(RefreshToken)
                            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
                            .values(used_at=utcnow()))
    if spent.rowcount != 1:
        revoke_family(session, row.family)
        raise RefreshError("refresh token reused; its family is revoked")
    user = session.get(User, row.user_id)
    if user is None or user.status != "active":
        raise RefreshError("user inactive")
    return user, issue(session, user.id, ttl, family=row.family)


def family_of(session, token, user_id):
    row = session.scalar(select(RefreshToken).where(RefreshToken.jti == _digest(token),
                                                    RefreshToken.user_id == user_id))
    return row.family if row else None


def revoke_family(session, family):
    session.execute(update(RefreshToken)
                    .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def revoke_all_of_user(session, user_id):
    session.execute(update(RefreshToken)
                    .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
