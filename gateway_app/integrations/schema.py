"""The integrations section of conf/gateway.yaml, read by http.py (timeouts), bookings.py
(booking_confirm_timeout) and usage_reporting.py (the Stripe meter and its interval)."""
from marshmallow import Schema, fields, validate, validates_schema

from ..policy_types import positive, require_complete_defaults, strict


@strict
class ProviderTimeoutsSchema(Schema):
    connect_timeout = fields.Float(validate=validate.Range(min=0.05))
    read_timeout = fields.Float(validate=validate.Range(min=0.05))
    retries = fields.Integer(validate=validate.Range(min=0, max=5))
    retry_backoff = fields.Float(validate=validate.Range(min=0))
    pool_size = fields.Integer(validate=positive)


@strict
class IntegrationsSchema(Schema):
    defaults = fields.Nested(ProviderTimeoutsSchema, required=True)
    providers = fields.Dict(keys=fields.String(validate=validate.OneOf(
        ["calcom", "retell", "stripe", "sendgrid"])), values=fields.Nested(ProviderTimeoutsSchema),
        load_default=dict)
    booking_confirm_timeout = fields.Float(required=True, validate=validate.Range(min=0.1))
    stripe_meter_event = fields.String(required=True, validate=validate.Length(min=1, max=100))
    usage_report_interval = fields.Integer(required=True, validate=positive)

    @validates_schema
    def defaults_complete(self, data, **kwargs):
        require_complete_defaults(ProviderTimeoutsSchema, data)
