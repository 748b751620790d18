"""Settings service: company settings (with provider account links), profile, API keys."""
import re
import zoneinfo

from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from blueprints.common import (PageArgs, current_company_id, current_principal, get_owned_or_404,
                               page_newest_first, page_schema)
from blueprints.parsing import GatewayBlueprint
from gateway_app.audit import audit
from gateway_app.db import Session, utcnow
from gateway_app.events import emit
from gateway_app.extensions import gateway_state
from gateway_app.identity import refresh_tokens
from gateway_app.identity.api_keys import SCOPES, GeneratedKey, normalise_scopes
from gateway_app.identity.passwords import hash_password, verify_password
from gateway_app.merge_patch import patched
from gateway_app.models import ROLES, TIERS, ApiKey, Company, User
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import provider_accounts

blp = GatewayBlueprint("settings", __name__, url_prefix="/api/v1/settings", description="Settings service")

INTEGRATION_FIELDS = ("retell_agent_id", "calcom_event_type_id", "stripe_customer_id")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def identity():
    return gateway_state().identity


# -- schemas -------------------------------------------------------------------------------
SPANS = dict(validate=validate.Length(max=6))


def business_hours_errors(hours):
    """{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...} must be ordered and
    non-overlapping; checked on the merged result, since a patch sets one day at a time."""
    errors = {}
    for day, spans in hours.items():
        previous_end = ""
        for start, end in spans:
            if not (CLOCK.match(start) and CLOCK.match(end)):
                errors[day] = ["Times are HH:MM (24 h)."]
                break
            if not previous_end <= start < end:
                errors[day] = ["Spans must be ordered, non-overlapping, start before end."]
                break
            previous_end = end
    return errors


def provider_id(pattern, shape):
    """A provider's id as the provider writes it: a malformed one would only fail later,
    in a webhook that finds no company or a booking Cal.com refuses."""
    return fields.String(allow_none=True, metadata={"description": shape}, validate=[
        validate.Length(min=1, max=100), validate.Regexp(pattern, error=f"Not a valid id: {shape}.")])


class IntegrationsSchema(Schema):
    retell_agent_id = provider_id(r"^[A-Za-z0-9_-]+$", "a Retell agent id (letters, digits, _ and -)")
    calcom_event_type_id = provider_id(r"^[1-9][0-9]{0,17}$", "a Cal.com event type id (a positive integer)")
    stripe_customer_id = provider_id(r"^cus_[A-Za-z0-9]+$", "a Stripe customer id (cus_...)")


class IntegrationsOut(Schema):
    retell_agent_id = fields.String(allow_none=True)
    calcom_event_type_id = fields.String(allow_none=True)
    stripe_customer_id = fields.String(allow_none=True)


SPAN_LIST = {"type": "array", "maxItems": 6, "description": "Open spans, ordered: [[\"09:00\", \"12:00\"], ...]",
             "items": {"type": "array", "minItems": 2, "maxItems": 2,
                       "items": {"type": "string", "pattern": CLOCK.pattern}}}
BUSINESS_HOURS = {"description": "The open spans of each weekday; a day absent is closed.",
                  "properties": {day: SPAN_LIST for day in WEEKDAYS}, "additionalProperties": False}


class CompanySettingsOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String(validate=validate.OneOf(TIERS))
    timezone = fields.String()
    business_hours = fields.Dict(metadata=BUSINESS_HOURS)
    integrations = fields.Nested(IntegrationsOut)


class CompanySettingsPatch(Schema):
    """A merge patch: null deletes a day of ``business_hours`` (closed), an integration
    link, or the whole object; the other members must keep a value."""
    name = fields.String(validate=validate.Length(min=1, max=200))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    business_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                                 values=fields.List(fields.List(fields.String(), validate=validate.Length(equal=2)),
                                                    allow_none=True, **SPANS),
                                 allow_none=True, metadata={"description": (
                                     '{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...}; a day '
                                     "absent or null is closed; spans ordered and non-overlapping.")})
    integrations = fields.Nested(IntegrationsSchema, allow_none=True)

    @validates("timezone")
    def known_timezone(self, value, **kwargs):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Not an IANA time zone (e.g. Europe/Berlin).")


class ProfileOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    company_id = fields.Integer()


class ProfilePatch(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    current_password = fields.String(load_only=True, validate=validate.Length(min=1, max=256))
    new_password = fields.String(load_only=True, validate=validate.Length(min=10, max=256))


class ApiKeyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)))
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)


class ApiKeyCreated(ApiKeyOut):
    key = fields.String(metadata={"description": "The secret, shown only in this response."})


class ApiKeyCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1, max=2))


ApiKeyPage = page_schema(ApiKeyOut, "ApiKeyPage")


# -- company ---------------------------------------------------------------------------------
def company_settings(company):
    return {"id": company.id, "name": company.name, "tier": company.tier,
            "timezone": company.timezone, "business_hours": company.business_hours or {},
            "integrations": {name: (company.integrations or {}).get(name) for name in INTEGRATION_FIELDS}}


@blp.route("/company", methods=["GET"])
@blp.doc(operationId="getCompanySettings")
@blp.response(200, CompanySettingsOut)
@gateway_policy(permission="settings:read", cache="company_settings")
def get_company():
    """The company's settings, including its linked provider accounts."""
    return company_settings(Session.get(Company, current_company_id()))


def linked_elsewhere(company_id, integrations):
    """The integration fields whose value another company already links."""
    taken = []
    for name, value in integrations.items():
        column = getattr(Company, name)
        if value is not None and Session.scalar(
                select(Company.id).where(column == value, Company.id != company_id)) is not None:
            taken.append(name)
    return taken


@blp.route("/company", methods=["PATCH"])
@blp.doc(operationId="updateCompanySettings")
@blp.arguments(CompanySettingsPatch)
@blp.response(200, CompanySettingsOut)
@blp.alt_response(409, description="A provider account in integrations is linked to another company.")
@blp.alt_response(502, description="Stripe refused the lookup of the customer to link (upstream_status).")
@gateway_policy(permission="settings:write")
def patch_company(data):
    """Change name, time zone, business hours or provider account links.

    Each provider id is also copied to the company's indexed column, which inbound
    webhooks use to find the company; one provider account links one company only.
    """
    company = Session.get(Company, current_company_id())
    current = company_settings(company)
    changes = patched({name: current[name] for name in ("name", "timezone", "business_hours",
                                                          "integrations")}, data)
    hours = changes.get("business_hours", {}) or {}
    errors = business_hours_errors(hours)
    if errors:
        abort(422, errors={"business_hours": errors})
    links = {}
    if "integrations" in changes:
        merged = changes.pop("integrations") or {}
        links = {name: merged.get(name) for name in INTEGRATION_FIELDS
                 if merged.get(name) != current["integrations"][name]}
    conflicts = linked_elsewhere(company.id, links)
    if conflicts:
        abort(409, message=f"Already linked to another company: {', '.join(conflicts)}.")
    try:
        provider_accounts.check_claims(company.id, links)
    except provider_accounts.NotOwned as refused:
        abort(422, errors={"integrations": refused.errors})
    if "business_hours" in changes:
        changes["business_hours"] = hours
    for name, value in changes.items():
        setattr(company, name, value)
    if links:
        company.integrations = {name: value for name, value in {**current["integrations"], **links}.items()
                                if value is not None}
        for name, value in links.items():
            setattr(company, name, value)
    changed = sorted(changes) + [f"integrations.{name}" for name in sorted(links)]
    audit(Session, "settings.company.updated", "company", company.id, fields=changed)
    emit(Session, "settings.changed", company.id, user_id=current_principal().user_id)
    try:
        Session.commit()
    except IntegrityError:  # a concurrent request linked the same account first
        Session.rollback()
        abort(409, message="A provider account in integrations is already linked to another company.")
    if company.timezone != current["timezone"]:
        # cached principals carry the timezone (the views in local time read it there)
        identity().company_changed(company.id)
    return company_settings(company)


# -- profile ---------------------------------------------------------------------------------
@blp.route("/profile", methods=["GET"])
@blp.response(200, ProfileOut)
@gateway_policy(permission="profile:read", cache="settings", cache_per_user=True)
def get_profile():
    """The calling user."""
    return Session.get(User, current_principal().user_id)


@blp.route("/profile", methods=["PATCH"])
@blp.doc(operationId="updateProfile")
@blp.arguments(ProfilePatch)
@blp.response(200, ProfileOut)
@gateway_policy(permission="profile:write")
def patch_profile(data):
    """Change one's name, or password (with the current one). A password change revokes
    every token, refresh token and session of the user: log in again afterwards."""
    user = Session.get(User, current_principal().user_id)
    # the passwords are write-only members: the patch's values
    data = patched({"name": user.name}, data)
    password_changed = "new_password" in data
    if password_changed:
        if not verify_password(user.password_hash, data.get("current_password", "")):
            abort(422, errors={"current_password": ["Missing or incorrect."]})
        user.password_hash = hash_password(data["new_password"])
        user.credential_version += 1
        refresh_tokens.revoke_all_of_user(Session, user.id)
        audit(Session, "profile.password_changed", "user", user.id)
    if "name" in data:
        user.name = data["name"]
        audit(Session, "profile.updated", "user", user.id, fields=["name"])
    emit(Session, "settings.changed", user.company_id, user_id=user.id)
    Session.commit()
    if password_changed:
        identity().user_changed(user.company_id, user.id)
    return user


# -- API keys --------------------------------------------------------------------------------
@blp.route("/api-keys", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ApiKeyPage)
@gateway_policy(permission="api_keys:manage")
def list_api_keys(args):
    """The company's API keys, newest first (never the secret)."""
    query = select(ApiKey).where(ApiKey.company_id == current_company_id())
    return page_newest_first(query, ApiKey.created_at, ApiKey.id, args)


@blp.route("/api-keys", methods=["POST"])
@blp.arguments(ApiKeyCreate)
@blp.response(201, ApiKeyCreated)
@gateway_policy(permission="api_keys:manage", resource="api_keys")
def create_api_key(data):
    """Create a key with `read` or `write` scope (`write` includes `read`). The key is
    in this response only; the gateway keeps its sha256."""
    generated = GeneratedKey()
    key = ApiKey(company_id=current_company_id(), created_by_id=current_principal().user_id,
                 name=data["name"], prefix=generated.prefix, key_hash=generated.key_hash,
                 scopes=normalise_scopes(data["scopes"]), created_at=utcnow())
    Session.add(key)
    Session.flush()
    audit(Session, "api_key.created", "api_key", key.id, name=key.name, scopes=key.scopes)
    emit(Session, "settings.changed", key.company_id, user_id=current_principal().user_id)
    Session.commit()
    return {**{name: getattr(key, name) for name in ApiKeyOut().fields}, "key": generated.secret}


@blp.route("/api-keys/<int:key_id>", methods=["DELETE"])
@blp.response(204)
@gateway_policy(permission="api_keys:manage")
def revoke_api_key(key_id):
    """Revoke a key; it stops working on the next request."""
    key = get_owned_or_404(ApiKey, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(Session, "api_key.revoked", "api_key", key.id, name=key.name)
        emit(Session, "settings.changed", key.company_id, user_id=current_principal().user_id)
        Session.commit()
        identity().company_changed(key.company_id)
    return ""
