"""Sign-up and credentials: bearer tokens with rotating refresh tokens, sessions, invitations."""
import datetime as dt

from flask import current_app
from flask_smorest import abort
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from werkzeug.http import dump_cookie

from blueprints.common import client_address, current_principal
from blueprints.parsing import GatewayBlueprint
from gateway_app.db import Session, utcnow
from gateway_app.errors import GatewayProblem
from gateway_app.extensions import gateway_state
from gateway_app.identity import refresh_tokens
from gateway_app.identity.login_throttle import Throttled
from gateway_app.identity.passwords import hash_password, verify_password
from gateway_app.identity.sessions import COOKIE_NAME
from gateway_app.identity.store import StoreUnavailable
from gateway_app.identity.tokens import issue_access_token
from gateway_app.models import ROLES, TIERS, Company, User
from gateway_app.openapi import refuses_api_keys
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services.contacts import normalise_email
from gateway_app.services.team import invite_token_digest

blp = GatewayBlueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign-up and credentials")

PASSWORD_FIELD = dict(required=True, load_only=True, validate=validate.Length(min=10, max=256))


class SignupSchema(Schema):
    company_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(**PASSWORD_FIELD)


class CompanyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String(validate=validate.OneOf(TIERS))


class UserOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))


class SignupOut(Schema):
    company = fields.Nested(CompanyOut)
    user = fields.Nested(UserOut)


class CredentialsSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class TokenOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer()


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class LogoutSchema(Schema):
    refresh_token = fields.String(validate=validate.Length(min=1, max=200))


class LoginOut(Schema):
    csrf_token = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)


class AcceptInviteSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = fields.String(**PASSWORD_FIELD)


def auth_config():
    return gateway_state().policy["authentication"]


def identity():
    return gateway_state().identity


@blp.route("/signup", methods=["POST"])
@blp.doc(operationId="signUp")
@blp.arguments(SignupSchema)
@blp.response(201, SignupOut)
@blp.alt_response(409, description="An account with this e-mail exists.")
@gateway_policy(public=True)
def signup(data):
    """Create a company on the free tier and its owner."""
    email = normalise_email(data["email"])
    if Session.scalar(select(User.id).where(User.email == email)) is not None:
        abort(409, message="An account with this email already exists.")
    company = Company(name=data["company_name"].strip(), tier="free")
    user = User(company=company, email=email, name=data["name"].strip(), role="owner",
                password_hash=hash_password(data["password"]))
    Session.add_all([company, user])
    Session.commit()
    return {"company": company, "user": user}


def authenticate_password(email, password):
    """The user for these credentials, or a 401 that reads the same for every failure.

    Unknown email and wrong password cost one argon2 verification each. The attempt takes
    its place in the failed-login windows (this account from this address, and this
    address) before the verification, atomically, so parallel guesses cannot exceed the
    limit; an attempt over it answers 429 before any verification.
    """
    account = normalise_email(email)
    throttle = identity().throttle
    try:
        attempt = throttle.attempt(account, client_address())
    except Throttled as refused:
        raise GatewayProblem(429, "Too Many Requests",
                             "Too many failed logins for this account from this address; "
                             "try again later.",
                             headers={"Retry-After": str(refused.retry_after)}, layer="login",
                             limit=refused.limit, window=refused.window, policy=refused.policy,
                             retry_after=refused.retry_after)
    try:
        user = Session.scalar(select(User).where(User.email == account))
        valid = verify_password(user.password_hash if user else None, password)
    except Exception:
        throttle.abandoned(attempt)  # not a wrong guess: the check could not be made
        raise
    if not valid or user.status != "active":
        raise GatewayProblem(401, "Unauthorized", "Invalid email or password.")
    throttle.succeeded(attempt)
    user.last_login_at = utcnow()
    return user


def token_pair(user, refresh_token):
    config = auth_config()
    return {
        "access_token": issue_access_token(current_app.config["SECRET_KEY"], config, user),
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": config["access_token_ttl"],
    }


@blp.route("/token", methods=["POST"])
@blp.doc(operationId="createToken")
@blp.arguments(CredentialsSchema)
@blp.response(200, TokenOut)
@blp.alt_response(401, description="Invalid e-mail or password.")
@gateway_policy(public=True)
def token(data):
    """Exchange email and password for an access token (15 min) and a refresh token."""
    user = authenticate_password(data["email"], data["password"])
    refresh = refresh_tokens.issue(Session, user.id, auth_config()["refresh_token_ttl"])
    Session.commit()
    return token_pair(user, refresh)


@blp.route("/refresh", methods=["POST"])
@blp.doc(operationId="refreshToken")
@blp.arguments(RefreshSchema)
@blp.response(200, TokenOut)
@blp.alt_response(401, description="The refresh token is invalid, expired or revoked.")
@gateway_policy(public=True)
def refresh(data):
    """Spend a refresh token for a new pair. A token used twice revokes its whole family."""
    try:
        user, next_refresh = refresh_tokens.rotate(Session, data["refresh_token"],
                                                   auth_config()["refresh_token_ttl"])
    except refresh_tokens.RefreshError:
        Session.commit()  # keeps a family revocation made on reuse
        raise GatewayProblem(401, "Unauthorized", "The refresh token is invalid, expired or revoked.")
    Session.commit()
    return token_pair(user, next_refresh)


@blp.route("/logout", methods=["POST"])
@blp.doc(operationId="logOut")
@blp.arguments(LogoutSchema)
@blp.response(204)
@gateway_policy()
@refuses_api_keys
def logout(data):
    """Revoke the credential used: the access token (and the refresh token's family, if
    sent), or the session."""
    principal = current_principal()
    services = identity()
    if principal.kind == "api_key":
        abort(400, message="API keys are revoked with DELETE /api/v1/settings/api-keys/<id>.")
    headers = {}
    if principal.kind == "token":
        try:
            services.revoke_access_token(principal.credential_id)
        except StoreUnavailable:
            raise GatewayProblem(503, "Service Unavailable",
                                 "The token denylist is unreachable: the token is not revoked; "
                                 "try again shortly.", headers={"Retry-After": "5"}) from None
        if data.get("refresh_token"):
            family = refresh_tokens.family_of(Session, data["refresh_token"], principal.user_id)
            if family:
                refresh_tokens.revoke_family(Session, family)
                Session.commit()
    else:
        try:
            services.sessions.destroy(principal.credential_id)
        except StoreUnavailable:
            raise GatewayProblem(503, "Service Unavailable",
                                 "The session store is unreachable: the session is not ended; "
                                 "try again shortly.", headers={"Retry-After": "5"}) from None
        headers["Set-Cookie"] = dump_cookie(COOKIE_NAME, "", max_age=0, expires=0, path="/",
                                            httponly=True, samesite="Lax",
                                            secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
    services.user_changed(principal.company_id, principal.user_id)
    return "", 204, headers


@blp.route("/login", methods=["POST"])
@blp.doc(operationId="logIn")
@blp.arguments(CredentialsSchema)
@blp.response(200, LoginOut)
@blp.alt_response(401, description="Invalid e-mail or password.")
@gateway_policy(public=True)
def login(data):
    """Start a server-side session (cookie). Send the returned csrf_token as X-CSRF-Token
    on every state-changing request."""
    user = authenticate_password(data["email"], data["password"])
    services = identity()
    try:
        cookie_value, csrf_token = services.sessions.create(user)
    except StoreUnavailable:
        Session.rollback()
        raise GatewayProblem(503, "Service Unavailable", "The session store is unreachable.")
    Session.commit()
    ttl = auth_config()["session_ttl"]
    cookie = dump_cookie(COOKIE_NAME, cookie_value, max_age=ttl, path="/", httponly=True,
                         samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
    return {"csrf_token": csrf_token, "expires_in": ttl, "user": user}, 200, {"Set-Cookie": cookie}


@blp.route("/accept-invite", methods=["POST"])
@blp.arguments(AcceptInviteSchema)
@blp.response(200, UserOut)
@blp.alt_response(400, description="The invitation is invalid, used or expired.")
@gateway_policy(public=True)
def accept_invite(data):
    """Activate an invited member with the token from the invitation email (valid for
    authentication.invite_ttl)."""
    user = Session.scalar(select(User).where(
        User.invite_token_hash == invite_token_digest(data["token"]), User.status == "invited"))
    if user is None:
        abort(400, message="The invitation is invalid or has already been used.")
    if user.created_at < utcnow() - dt.timedelta(seconds=auth_config()["invite_ttl"]):
        abort(400, message="The invitation has expired; ask for a new one.")
    user.password_hash = hash_password(data["password"])
    user.status = "active"
    user.invite_token_hash = None
    Session.commit()
    return user
