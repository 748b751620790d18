"""Admin: a company's tier. The change applies to the company's next request."""
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from gateway_app.audit import audit
from gateway_app.db import Session
from gateway_app.events import emit
from gateway_app.merge_patch import patched
from gateway_app.models import TIERS, Company
from gateway_app.pipeline.declarations import ADMIN, gateway_policy

from . import blp


class TierChange(Schema):
    tier = fields.String(required=True, validate=validate.OneOf(TIERS))


class AdminCompanyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String()


@blp.route("/companies/<int:company_id>", methods=["PATCH"])
@blp.arguments(TierChange)
@blp.response(200, AdminCompanyOut)
@gateway_policy(**ADMIN)
def change_tier(data, company_id):
    """Change a company's tier (its rate limits scale with it from the next request)."""
    company = Session.get(Company, company_id)
    if company is None:
        abort(404, message=f"No company with id {company_id}.")
    previous = company.tier
    tier = patched({"tier": previous}, data)["tier"]
    if previous != tier:
        company.tier = tier
        audit(Session, "admin.company.tier_changed", "company", company.id, company_id=company.id,
              previous=previous, tier=company.tier)
        emit(Session, "settings.changed", company.id)
        # cached principals carry the tier: every worker re-reads it on the next request
        emit(Session, "company.tier_changed", company.id, tier=company.tier)
        Session.commit()
    return company
