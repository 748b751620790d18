"""Sign-up and credentials: tokens, refresh, sessions."""
from flask import current_app
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.errors import GatewayProblem
from gateway_app.extensions import gateway_state
from gateway_app.identity.passwords import hash_password, verify_password
from gateway_app.identity.tokens import issue_access_token
from gateway_app.models import Company, User
from gateway_app.pipeline.declarations import gateway_policy

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign-up and credentials")


class SignupSchema(Schema):
    company_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=10, max=256))


class CompanyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String()


class UserOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String()


class SignupOut(Schema):
    company = fields.Nested(CompanyOut)
    user = fields.Nested(UserOut)


class CredentialsSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class TokenOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


def auth_config():
    return gateway_state().policy["authentication"]


def normalise_email(email):
    return email.strip().lower()


@blp.route("/signup", methods=["POST"])
@blp.arguments(SignupSchema)
@blp.response(201, SignupOut)
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
    """The user for these credentials, or a 401 that reads the same for every failure."""
    user = Session.scalar(select(User).where(User.email == normalise_email(email)))
    valid = verify_password(user.password_hash if user else None, password)
    if not valid or user.status != "active":
        raise GatewayProblem(401, "Unauthorized", "Invalid email or password.")
    return user


@blp.route("/token", methods=["POST"])
@blp.arguments(CredentialsSchema)
@blp.response(200, TokenOut)
@gateway_policy(public=True)
def token(data):
    """Exchange email and password for a bearer access token."""
    user = authenticate_password(data["email"], data["password"])
    config = auth_config()
    return {
        "access_token": issue_access_token(current_app.config["SECRET_KEY"], config, user),
        "refresh_token": None,
        "token_type": "Bearer",
        "expires_in": config["access_token_ttl"],
    }
