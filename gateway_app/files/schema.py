"""The files section of conf/gateway.yaml: what is kept, how big, and for how long.

Where files are kept is FILE_STORAGE_URL (environment, settings.py); this section is read
by services/call_exports.py (retention), services/attachments.py (types and sizes),
services/recordings.py (size) and backups.py (how many dumps are kept).
"""
from marshmallow import Schema, ValidationError, fields, validate, validates

from ..policy_types import positive, strict

DEFAULT_CONTENT_TYPES = [
    "application/pdf", "text/plain", "text/csv", "image/png", "image/jpeg", "image/gif",
    "image/webp", "audio/mpeg", "audio/wav",
]


def content_type(value):
    if "/" not in value or ";" in value or value != value.strip().lower():
        raise ValidationError(f"not a lower-case media type without parameters: {value!r}")


@strict
class AttachmentsSchema(Schema):
    # bytes of one file, per tier: every tier of the policy must have one (policy.py checks)
    max_bytes = fields.Dict(keys=fields.String(), values=fields.Integer(validate=positive), required=True)
    content_types = fields.List(fields.String(validate=content_type), load_default=lambda: list(
        DEFAULT_CONTENT_TYPES), validate=validate.Length(min=1))

    @validates("content_types")
    def no_active_content(self, value, **kwargs):
        # a type a browser would run as a page stays out, whatever the headers say
        active = sorted(set(value) & {"text/html", "image/svg+xml", "application/xhtml+xml",
                                      "text/javascript", "application/javascript", "text/xml"})
        if active:
            raise ValidationError(f"active content may not be uploaded: {', '.join(active)}")


@strict
class RecordingsSchema(Schema):
    max_bytes = fields.Integer(load_default=200 * 1024 * 1024, validate=positive)


@strict
class FilesSchema(Schema):
    export_retention_days = fields.Integer(load_default=7, validate=positive)
    backups_keep = fields.Integer(load_default=14, validate=positive)
    attachments = fields.Nested(AttachmentsSchema, load_default=lambda: AttachmentsSchema().load(
        {"max_bytes": {"free": 5 * 1024 * 1024}}))
    recordings = fields.Nested(RecordingsSchema, load_default=lambda: RecordingsSchema().load({}))


# what a multipart body may carry besides the file: boundaries, part headers, a long name
MULTIPART_OVERHEAD = 64 * 1024


def upload_body_limits(files_policy):
    """The largest request body each kind of upload may have, whatever the caller's tier
    (the tier's own limit is checked once the caller is known)."""
    return {"attachments": max(files_policy["attachments"]["max_bytes"].values()) + MULTIPART_OVERHEAD}
