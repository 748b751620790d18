"""Customers service: search, profiles, create/update with duplicate detection, timeline,
attachments."""
from contextlib import contextmanager

from flask import request
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import GatewayProblem
from gateway_app.files import FileMissing
from gateway_app.files.schema import MULTIPART_OVERHEAD
from gateway_app.files.streams import TooLarge
from gateway_app.models import (APPOINTMENT_STATUSES, CALL_DIRECTIONS, CALL_OUTCOMES, CALL_STATUSES, SENTIMENTS,
                                Customer)
from gateway_app.openapi import any_of_components
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import attachments, customers
from gateway_app.services.contacts import DEFAULT_REGION, SUPPORTED_REGIONS
from gateway_app.services.customers_queries import (CUSTOMERS, SENT_ROW, profile,
                                                    search_page_rows, timeline_page)
from gateway_app.services.serialization import Serializer, check_rows_dump_as_is, json_response

from .common import (PageArgs, current_company_id, current_principal, encode_cursor,
                     get_owned_or_404, page_fetched_newest_first, page_schema)
from .downloads import download_response

blp = GatewayBlueprint("customers", __name__, url_prefix="/api/v1/customers", description="Customers service")

REGION_FIELD = dict(validate=validate.OneOf(sorted(SUPPORTED_REGIONS)), metadata={
    "description": "Region (ISO 3166 alpha-2) for phone numbers written without a country code; "
                   "default US."})


class RegionArgs(Schema):
    region = fields.String(load_default=DEFAULT_REGION, **REGION_FIELD)


class CustomerSearchArgs(PageArgs, RegionArgs):
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=200), metadata={
        "description": "Part of a name or e-mail, or a phone number in any common format."})


class CustomerIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(allow_none=True, validate=validate.Length(min=1, max=40),
                          metadata={"description": "Any common format; stored as E.164."})
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    notes = fields.String(allow_none=True, validate=validate.Length(max=10000))


class CustomerPatchIn(CustomerIn):
    name = fields.String(validate=validate.Length(min=1, max=200))


class CustomerOut(Schema):
    id = fields.Integer()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CustomerProfileOut(CustomerOut):
    calls_count = fields.Integer()
    last_call_at = fields.DateTime(allow_none=True)
    total_call_seconds = fields.Integer()
    appointments_count = fields.Integer()
    next_appointment_at = fields.DateTime(allow_none=True)


class TimelineCallOut(Schema):
    direction = fields.String(validate=validate.OneOf(CALL_DIRECTIONS))
    status = fields.String(validate=validate.OneOf(CALL_STATUSES))
    outcome = fields.String(allow_none=True, validate=validate.OneOf(CALL_OUTCOMES))
    sentiment = fields.String(allow_none=True, validate=validate.OneOf(SENTIMENTS))
    duration_seconds = fields.Integer()
    summary = fields.String(allow_none=True)


class TimelineAppointmentOut(Schema):
    title = fields.String()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()


class TimelineItemOut(Schema):
    type = fields.String(attribute="kind", validate=validate.OneOf(["call", "appointment"]))
    id = fields.Function(lambda item: item["id"], metadata={"type": "integer"})
    at = fields.DateTime(metadata={"description": "When the call started / the appointment starts."})
    call = fields.Function(lambda item: item["call"],
                           metadata={**any_of_components(TimelineCallOut, nullable=True),
                                     "description": "The call, when type is call."})
    appointment = fields.Function(
        lambda item: item["appointment"],
        metadata={**any_of_components(TimelineAppointmentOut, nullable=True),
                  "description": "The appointment, when type is appointment."})


TIMELINE_SHOWN = {"call": ("direction", "status", "outcome", "sentiment", "duration_seconds", "summary"),
                  "appointment": ("title", "status", "starts_at", "ends_at")}


def timeline_item(entry):
    """What TimelineItemOut dumps of a feed entry: its kind's object, the other kind's None."""
    item = {"type": entry["kind"], "id": entry["id"], "at": entry["at"], "call": None, "appointment": None}
    item[entry["kind"]] = {key: entry[key] for key in TIMELINE_SHOWN[entry["kind"]]}
    return item


CustomerPage = page_schema(CustomerOut, "CustomerPage")
TimelinePage = page_schema(TimelineItemOut, "CustomerTimelinePage")
CUSTOMER = Serializer(CustomerOut)
CUSTOMER_PAGE = Serializer(CustomerPage)
CUSTOMER_PROFILE = Serializer(CustomerProfileOut)
# the list's rows are its items as they are
check_rows_dump_as_is(CustomerOut, SENT_ROW)


@contextmanager
def refusals_as_problems():
    """The service's refusals as the contract answers them: 422 naming the field, 409 naming the customer."""
    try:
        yield
    except customers.InvalidContact as refused:
        abort(422, errors={refused.field: [refused.message]})
    except customers.DuplicateCustomer as refused:
        raise GatewayProblem(409, "Conflict", str(refused), problem_type="duplicate-customer",
                             field=refused.field,
                             existing_customer_id=refused.existing_customer_id) from None


@blp.route("")
@blp.doc(operationId="listCustomers")
@blp.arguments(CustomerSearchArgs(), location="query")
@blp.response(200, CustomerPage)
@gateway_policy(permission="customers:read", cache="customers")
def search_customers(args):
    """Customers by name, e-mail or phone, most recently changed first."""
    company_id, q, region = current_company_id(), args.get("q"), args["region"]
    page = page_fetched_newest_first(
        lambda after, limit: search_page_rows(company_id, q, region, after, limit),
        CUSTOMERS.updated_at, CUSTOMERS.id, args)
    return json_response(page, CUSTOMER_PAGE.exact_only)


@blp.route("", methods=["POST"])
@blp.arguments(RegionArgs, location="query", as_kwargs=True)
@blp.arguments(CustomerIn)
@blp.response(201, CustomerOut)
@blp.alt_response(409, description="A customer with this phone or e-mail exists (existing_customer_id).")
@gateway_policy(permission="customers:write")
def create_customer(data, region):
    """Create a customer; a phone or e-mail another customer has is refused with 409."""
    with refusals_as_problems():
        customer = customers.create(current_company_id(), current_principal().user_id, data, region)
    return json_response(CUSTOMER.one(customer), CUSTOMER.exact_only, status=201)


@blp.route("/<int:customer_id>")
@blp.response(200, CustomerProfileOut)
@gateway_policy(permission="customers:read", cache="customers")
def get_customer(customer_id):
    """A customer's profile with call and appointment figures."""
    found = profile(current_company_id(), customer_id)
    if found is None:
        abort(404, message=f"No customer with id {customer_id}.")
    return json_response(CUSTOMER_PROFILE.one(found), CUSTOMER_PROFILE.exact_only)


@blp.route("/<int:customer_id>", methods=["PATCH"])
@blp.arguments(RegionArgs, location="query", as_kwargs=True)
@blp.arguments(CustomerPatchIn)
@blp.response(200, CustomerOut)
@blp.alt_response(409, description="Another customer has this phone or e-mail (existing_customer_id).")
@gateway_policy(permission="customers:write")
def update_customer(data, customer_id, region):
    """Change some fields of a customer (a merge patch: null clears phone, e-mail or notes)."""
    with refusals_as_problems():
        customer = customers.update(current_company_id(), customer_id, current_principal().user_id,
                                    data, region)
    if customer is None:
        abort(404, message=f"No customer with id {customer_id}.")
    return json_response(CUSTOMER.one(customer), CUSTOMER.exact_only)


@blp.route("/<int:customer_id>/timeline")
@blp.doc(operationId="getCustomerTimeline")
@blp.arguments(PageArgs, location="query")
@blp.response(200, TimelinePage)
@gateway_policy(permission="customers:read")
def customer_timeline(args, customer_id):
    """The customer's calls and appointments, newest first.

    Not cached: it changes with calls and with appointments, and no cache namespace
    is invalidated by both calls.created and appointments.updated.
    """
    page = timeline_page(current_company_id(), customer_id, args, encode_cursor)
    if page is None:
        abort(404, message=f"No customer with id {customer_id}.")
    page["data"] = [timeline_item(entry) for entry in page["data"]]
    # the items are their dumps already: text, ints and None, which json_response writes
    # as jsonify does
    return json_response(page)


# --- attachments -------------------------------------------------------------------------

class AttachmentOut(Schema):
    id = fields.Integer()
    filename = fields.String(metadata={"description": "The uploaded name, sanitised."})
    content_type = fields.String()
    size = fields.Integer(attribute="size_bytes", metadata={"description": "Bytes."})
    created_at = fields.DateTime()


class AttachmentListOut(Schema):
    data = fields.List(fields.Nested(AttachmentOut))


UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}}}}}}


def uploaded_file(limit):
    """The multipart part ``file``, parsed with the body bounded by the caller's tier; 413
    before reading when the declared length is already over it."""
    bound = limit + MULTIPART_OVERHEAD
    if (request.content_length or 0) > bound:
        raise attachment_too_large(limit)
    request.max_content_length = min(request.max_content_length or bound, bound)
    upload = request.files.get("file")
    if upload is None:
        raise GatewayProblem(400, "Bad Request", "The request has no file part: send "
                             "multipart/form-data with the file in the field 'file'.",
                             problem_type="missing-file")
    return upload


def attachment_too_large(limit):
    return GatewayProblem(413, "Request Entity Too Large",
                          f"An attachment may be at most {limit} bytes on this plan.",
                          problem_type="attachment-too-large", max_bytes=limit)


@blp.route("/<int:customer_id>/attachments", methods=["POST"])
@blp.doc(requestBody=UPLOAD_BODY)
@blp.response(201, AttachmentOut)
@blp.alt_response(400, description="No file part.")
@blp.alt_response(413, description="Larger than the plan allows.")
@blp.alt_response(415, description="A content type that is not accepted.")
@gateway_policy(permission="attachments:write", resource="attachments", upload="attachments")
def upload_attachment(customer_id):
    """Attach a file to a customer (multipart/form-data, field ``file``)."""
    customer = get_owned_or_404(Customer, customer_id)
    principal = current_principal()
    limit = attachments.max_bytes_for(principal.tier)
    upload = uploaded_file(limit)
    try:
        return attachments.add(customer, principal.user_id, principal.tier, upload.stream,
                               upload.filename, upload.mimetype)
    except attachments.UnsupportedType as refused:
        raise GatewayProblem(415, "Unsupported Media Type", str(refused), expected=", ".join(refused.allowed),
                             received=refused.content_type or None, accepted=refused.allowed) from None
    except TooLarge:
        raise attachment_too_large(limit) from None
    finally:
        upload.close()


@blp.route("/<int:customer_id>/attachments")
@blp.response(200, AttachmentListOut)
@gateway_policy(permission="attachments:read", cache="customers")
def list_attachments(customer_id):
    """The customer's attachments, newest first."""
    return {"data": attachments.attachments_of(get_owned_or_404(Customer, customer_id))}


def owned_attachment(customer_id, attachment_id):
    attachment = attachments.find(get_owned_or_404(Customer, customer_id), attachment_id)
    if attachment is None:
        raise GatewayProblem(404, "Not Found", f"No attachment with id {attachment_id}.")
    return attachment


@blp.route("/<int:customer_id>/attachments/<int:attachment_id>")
@blp.response(200, description="The file, always as a download.",
              content_type="application/octet-stream")
@gateway_policy(permission="attachments:read")
def download_attachment(customer_id, attachment_id):
    """Download an attachment (``Content-Disposition: attachment``, never shown inline)."""
    attachment = owned_attachment(customer_id, attachment_id)
    try:
        readable = attachments.open_attachment(attachment)
    except FileMissing:
        raise GatewayProblem(410, "Attachment Gone", "This attachment's file no longer exists.",
                             attachment_id=attachment.id) from None
    return download_response(attachment.path, attachment.filename, attachment.content_type,
                             readable, attachment.size_bytes)


@blp.route("/<int:customer_id>/attachments/<int:attachment_id>", methods=["DELETE"])
@blp.response(204)
@gateway_policy(permission="attachments:write")
def delete_attachment(customer_id, attachment_id):
    """Remove an attachment and its file."""
    customer = get_owned_or_404(Customer, customer_id)
    attachment = attachments.find(customer, attachment_id)
    if attachment is None:
        raise GatewayProblem(404, "Not Found", f"No attachment with id {attachment_id}.")
    attachments.remove(customer, attachment, current_principal().user_id)
    return "", 204
