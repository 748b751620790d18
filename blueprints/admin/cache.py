"""Admin: purge the response cache by namespace, company or namespace pattern.

A purge replaces generation tokens, so it reaches every worker's L1 and the shared L2
at once; nothing is scanned or deleted (entries expire on their own).
"""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from blueprints.common import ROW_ID
from gateway_app.cache import CacheUnavailable
from gateway_app.errors import GatewayProblem
from gateway_app.pipeline.declarations import ADMIN, gateway_policy
from gateway_app.services import operations
from gateway_app.services.operations import caching_stage

from . import blp, refused


class PurgeSchema(Schema):
    namespace = fields.String(validate=validate.Length(min=1, max=64))
    company_id = fields.Integer(validate=ROW_ID)
    pattern = fields.String(validate=validate.Length(min=1, max=64))

    @validates_schema
    def names_known_namespaces(self, data, **kwargs):
        rules = caching_stage().rules
        if "namespace" in data and data["namespace"] not in rules.namespaces:
            raise ValidationError({"namespace": [f"unknown namespace; known: {', '.join(rules.namespaces)}"]})
        if "pattern" in data and not rules.expand(data["pattern"]):
            raise ValidationError({"pattern": ["matches no namespace"]})


class PurgeOut(Schema):
    namespaces = fields.List(fields.String())
    company_id = fields.Integer(allow_none=True)


@blp.route("/cache/purge", methods=["POST"])
@blp.arguments(PurgeSchema)
@blp.response(200, PurgeOut)
@gateway_policy(**ADMIN)
def purge_cache(data):
    """Invalidate cached responses: all of them, or those of a namespace, a pattern
    (``settings*``) and/or one company. Written to the audit log."""
    try:
        with refused():
            return operations.purge_cache(data.get("namespace"), data.get("pattern"),
                                          data.get("company_id"), via="admin-api")
    except CacheUnavailable:
        raise GatewayProblem(503, "Service Unavailable",
                             "Redis is unreachable; this process will apply the purge when Redis answers again.",
                             problem_type="cache-unavailable", headers={"Retry-After": "5"})
