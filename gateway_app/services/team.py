"""A company's members: invitations, roles, removal, and the rule that an active owner remains.

The team blueprint calls these and turns OwnerOnly, LastOwner and EmailTaken into its
HTTP answers.
"""
import hashlib
import secrets

from functools import lru_cache

from sqlalchemy import bindparam, func, select

from gateway_app.audit import audit
from gateway_app.db import Session, iso_instant
from gateway_app.events import emit
from gateway_app.extensions import gateway_state
from gateway_app.models import User
from gateway_app.notifications import queue_email
from gateway_app.services import keyset
from gateway_app.services.contacts import normalise_email


class OwnerOnly(Exception):
    """Only an owner can make, unmake or remove owners."""

    def __init__(self, action):
        super().__init__(f"Only an owner can {action}.")


class LastOwner(Exception):
    def __init__(self):
        super().__init__("The company's last owner cannot be removed or demoted.")


class EmailTaken(Exception):
    def __init__(self):
        super().__init__("An account with this email already exists.")


def invite_token_digest(token):
    """What is stored of an invitation token: the token itself is only in the email."""
    return hashlib.sha256(token.encode()).hexdigest()


def require_owner_for(actor, action):
    if actor.role != "owner":
        raise OwnerOnly(action)


def ensure_another_owner(member):
    """Refuse to leave the company without an active owner (rows locked against a race)."""
    others = Session.scalars(select(User.id).where(
        User.company_id == member.company_id, User.role == "owner", User.status == "active",
        User.id != member.id).with_for_update()).all()
    if not others:
        raise LastOwner()


def member_changed(company_id, member_id):
    """The member's cached principal is stale in every worker from now on."""
    gateway_state().identity.user_changed(company_id, member_id)


def invite(actor, email, name, role):
    """A pending member of the actor's company, and the invitation email queued with it."""
    if role == "owner":
        require_owner_for(actor, "invite an owner")
    email = normalise_email(email)
    if Session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise EmailTaken()
    token = secrets.token_urlsafe(32)
    member = User(company_id=actor.company_id, email=email, name=name.strip(),
                  role=role, status="invited", invite_token_hash=invite_token_digest(token))
    Session.add(member)
    Session.flush()
    queue_email(Session, member.company_id, to=email, subject="You are invited to your team's workspace",
                text=(f"{member.name}, you have been invited as {member.role}. Accept with "
                      f"POST /api/v1/auth/accept-invite using this token: {token}"),
                category="team_invite")
    audit(Session, "team.member_invited", "user", member.id, role=member.role)
    emit(Session, "settings.changed", member.company_id, user_id=actor.user_id)
    Session.commit()
    return member


def change_role(actor, member, new_role):
    """Give ``member`` ``new_role``; it applies to the member's next request."""
    if new_role == member.role:
        return member
    if "owner" in (member.role, new_role):
        require_owner_for(actor, "grant or take the owner role")
    if member.role == "owner":
        ensure_another_owner(member)
    audit(Session, "team.role_changed", "user", member.id, previous=member.role, role=new_role)
    member.role = new_role
    emit(Session, "settings.changed", member.company_id, user_id=actor.user_id)
    Session.commit()
    member_changed(member.company_id, member.id)
    return member


def remove(actor, member):
    """Delete ``member``; their tokens and sessions stop working at once."""
    company_id, member_id = member.company_id, member.id
    if member.role == "owner":
        require_owner_for(actor, "remove an owner")
        ensure_another_owner(member)
    audit(Session, "team.member_removed", "user", member.id, email=member.email, role=member.role)
    emit(Session, "settings.changed", member.company_id, user_id=actor.user_id)
    Session.delete(member)
    Session.commit()
    member_changed(company_id, member_id)


USERS = User.__table__.c
# what the list sends: instants as the ISO text the answer shows
MEMBER_COLUMNS = (USERS.id, USERS.email, USERS.name, USERS.role, USERS.status,
                  iso_instant(USERS.created_at), iso_instant(USERS.last_login_at))


@lru_cache(maxsize=2)
def _members_page_statement(after):
    return keyset.newest_first(select(*MEMBER_COLUMNS).where(USERS.company_id == bindparam("company_id")),
                               USERS.created_at, USERS.id, after)


def members_page_rows(company_id, after, limit):
    """A page of the company's members, newest first (``after``: (created_at, id) of the
    last one served, or None); the statement is built once."""
    return keyset.page_rows(_members_page_statement(after is not None), {"company_id": company_id},
                            after, limit)
