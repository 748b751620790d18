"""Asynchronous call exports: a CSV written into the file store by a background thread.

Why a thread of the web process rather than the outbox worker: the export starts at
once instead of at the worker's next poll, and with an s3:// store (the platform's
choice) the finished file is served by any dyno. Why not generate it inside the
request: a large export outlives the router's 30 s request timeout, which is the reason
a client asks for an asynchronous export at all. Under gunicorn's gevent workers the
thread is a greenlet; a process restart leaves the row pending, which the download
endpoint reports as interrupted once it is older than STALE_AFTER. Exports are kept
``files.export_retention_days`` (policy), then `gateway worker` deletes them.
"""
import datetime as dt
import logging
import threading
import uuid

from flask import current_app
from sqlalchemy import select

from ..db import Session, utcnow
from ..extensions import gateway_state
from ..files import FileMissing, StorageError
from ..files.streams import ChunksReader
from ..models import StoredFile
from .calls_queries import csv_chunks, export_rows

log = logging.getLogger("gateway.exports")
KIND = "calls_export"
CONTENT_TYPE = "text/csv"
STALE_AFTER = dt.timedelta(minutes=15)
DATETIME_FILTERS = ("started_from", "started_before")
EXPIRED_PER_PASS = 500
SWEEP_INTERVAL = 3600   # seconds between the worker's passes over expired exports


class ExportGone(Exception):
    """The export's file is no longer in the store."""


def serialise_filters(filters):
    return {name: (value.isoformat() if name in DATETIME_FILTERS else value)
            for name, value in filters.items() if value is not None}


def deserialise_filters(params):
    return {name: (dt.datetime.fromisoformat(value) if name in DATETIME_FILTERS else value)
            for name, value in (params or {}).items()}


def start_export(company_id, filters):
    """Record a pending export, commit it, and generate the file in the background."""
    stored = StoredFile(company_id=company_id, kind=KIND, status="pending",
                        path=f"exports/{company_id}/calls-{uuid.uuid4().hex}.csv",
                        params=serialise_filters(filters))
    Session.add(stored)
    Session.commit()
    app = current_app._get_current_object()
    threading.Thread(target=generate_in_background, args=(app, stored.id),
                     name=f"calls-export-{stored.id}", daemon=True).start()
    return stored


def find_export(company_id, export_id):
    """The company's export with this id, or None (another company's is none)."""
    return Session.scalar(select(StoredFile).where(
        StoredFile.id == export_id, StoredFile.company_id == company_id, StoredFile.kind == KIND))


def generate_in_background(app, file_id):
    with app.app_context():  # its own scoped Session: this thread's, removed on exit
        try:
            generate(app, file_id)
        except Exception:  # a failed export is reported to the client, never raised
            log.exception("call export failed", extra={"file_id": file_id})
            Session.rollback()
            stored = Session.get(StoredFile, file_id)
            if stored is not None:
                stored.status = "failed"
                Session.commit()


def generate(app, file_id):
    stored = Session.get(StoredFile, file_id)
    rows = export_rows(stored.company_id, deserialise_filters(stored.params))
    stored.size_bytes = gateway_state(app).files.save(stored.path, ChunksReader(csv_chunks(rows)),
                                                      CONTENT_TYPE)
    stored.status = "ready"
    Session.commit()


def effective_status(stored, now=None):
    """pending | ready | failed; a pending export nobody is writing any more counts as failed."""
    if stored.status == "pending" and (now or utcnow()) - stored.created_at > STALE_AFTER:
        return "failed"
    return stored.status


def open_export(stored):
    """A readable stream of a ready export's CSV; ExportGone when the store lost it."""
    try:
        return gateway_state().files.open(stored.path)
    except FileMissing:
        raise ExportGone(stored.id) from None


def delete_expired_exports(app=None, now=None):
    """Remove the exports older than the retention (``gateway worker`` runs this): the
    file first, then the row, so a row never points at a file that is gone on purpose.
    Returns how many were removed."""
    app = app or current_app
    state = gateway_state(app)
    retention = dt.timedelta(days=state.policy["files"]["export_retention_days"])
    now = now or utcnow()   # created_at is the real instant, not the business clock
    expired = Session.scalars(select(StoredFile).where(
        StoredFile.kind == KIND, StoredFile.created_at < now - retention)
        .order_by(StoredFile.id).limit(EXPIRED_PER_PASS)).all()
    removed = 0
    for stored in expired:
        try:
            state.files.delete(stored.path)
        except StorageError:
            log.warning("expired export not deleted; retried next pass", extra={"file_id": stored.id})
            continue
        Session.delete(stored)
        removed += 1
    Session.commit()
    if removed:
        log.info("expired exports deleted", extra={"count": removed})
    return removed
