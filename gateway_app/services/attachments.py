"""Customer attachments: files users attach to a customer, their bytes in the file store.

The policy's ``files.attachments`` says which content types are accepted and how big a
file each tier may upload. A file is streamed into the store through a reader that stops
it past the tier's size, then its row is committed; a failed commit removes the file, so
the store holds no object without its row.
"""
import logging
import mimetypes
import uuid

from sqlalchemy import select

from ..db import Session
from ..extensions import gateway_state
from ..files import StorageError
from ..files.names import sanitised_filename
from ..files.streams import BoundedReader
from ..models import CustomerAttachment
from .customers import record_change

log = logging.getLogger("gateway.attachments")
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}



class UnsupportedType(Exception):
    def __init__(self, content_type, allowed):
        super().__init__(f"Files of type {content_type or 'unknown'} cannot be attached; "
                         f"accepted: {', '.join(allowed)}.")
        self.content_type = content_type
        self.allowed = allowed


def attachments_policy():
    return gateway_state().policy["files"]["attachments"]


def max_bytes_for(tier):
    """How big one attachment of a company of ``tier`` may be (a tier not listed: free's)."""
    sizes = attachments_policy()["max_bytes"]
    return sizes.get(tier, sizes["free"])


def accepted_type(declared, filename):
    """The media type to keep: the declared one without parameters, or, when the client
    declared none or a generic one, the one the file name implies; UnsupportedType when
    it is not on the policy's list."""
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if content_type in GENERIC_TYPES:
        content_type = (mimetypes.guess_type(filename or "")[0] or "").lower()
    allowed = attachments_policy()["content_types"]
    if content_type not in allowed:
        raise UnsupportedType(content_type, allowed)
    return content_type


def add(customer, user_id, tier, stream, raw_filename, declared_type):
    """Store ``stream`` as an attachment of ``customer``; TooLarge past the tier's size."""
    content_type = accepted_type(declared_type, raw_filename)
    store = gateway_state().files
    path = f"attachments/{customer.company_id}/{customer.id}/{uuid.uuid4().hex}"
    size = store.save(path, BoundedReader(stream, max_bytes_for(tier)), content_type)
    attachment = CustomerAttachment(company_id=customer.company_id, customer_id=customer.id,
                                    uploaded_by_id=user_id, filename=sanitised_filename(raw_filename),
                                    content_type=content_type, size_bytes=size, path=path)
    try:
        Session.add(attachment)
        Session.flush()
        record_change(Session.connection(), Session, "customer.attachment_added", identity_of(customer),
                      user_id, attachment_id=attachment.id, filename=attachment.filename, size_bytes=size)
        Session.commit()
    except Exception:
        Session.rollback()
        discard(store, path)
        raise
    return attachment


def identity_of(customer):
    """What ``record_change`` reads of a customer (it takes the Core rows' dicts)."""
    return {"id": customer.id, "company_id": customer.company_id}


def attachments_of(customer):
    return Session.scalars(select(CustomerAttachment).where(
        CustomerAttachment.company_id == customer.company_id,
        CustomerAttachment.customer_id == customer.id).order_by(CustomerAttachment.id.desc())).all()


def find(customer, attachment_id):
    """The customer's attachment with this id, or None (another customer's is none)."""
    return Session.scalar(select(CustomerAttachment).where(
        CustomerAttachment.id == attachment_id, CustomerAttachment.company_id == customer.company_id,
        CustomerAttachment.customer_id == customer.id))


def open_attachment(attachment):
    """A readable stream of the bytes; FileMissing when the store lost them."""
    return gateway_state().files.open(attachment.path)


def remove(customer, attachment, user_id):
    """Delete the row, then the bytes: a failure in between leaves an orphan object, never
    a row whose download fails."""
    path = attachment.path
    Session.delete(attachment)
    record_change(Session.connection(), Session, "customer.attachment_deleted", identity_of(customer),
                  user_id, attachment_id=attachment.id, filename=attachment.filename)
    Session.commit()
    discard(gateway_state().files, path)


def discard(store, path):
    try:
        store.delete(path)
    except StorageError:
        log.warning("attachment bytes not deleted", extra={"path": path})

