"""Asynchronous call exports: a CSV written under FILE_STORAGE_DIR by a background thread.

Why a thread of the web process rather than the outbox worker: the file must land on
the filesystem the web process serves downloads from, and on the platform the worker
runs on another dyno with its own disk. Why not generate it inside the request: a
large export outlives the router's 30 s request timeout, which is the reason a client
asks for an asynchronous export at all. Under gunicorn's gevent workers the thread is
a greenlet; a process restart leaves the row pending, which the download endpoint
reports as interrupted once it is older than STALE_AFTER.
"""
import datetime as dt
import logging
import os
import threading
import uuid

from flask import current_app

from ..db import Session, utcnow
from ..models import StoredFile
from .calls_queries import csv_chunks, export_rows

log = logging.getLogger("gateway.exports")
KIND = "calls_export"
STALE_AFTER = dt.timedelta(minutes=15)
DATETIME_FILTERS = ("started_from", "started_before")


def storage_root(app=None):
    return (app or current_app).config["FILE_STORAGE_DIR"]


def absolute_path(stored_file, app=None):
    return os.path.join(storage_root(app), stored_file.path)


def serialise_filters(filters):
    return {name: (value.isoformat() if name in DATETIME_FILTERS else value)
            for name, value in filters.items() if value is not None}


def deserialise_filters(params):
    return {name: (dt.datetime.fromisoformat(value) if name in DATETIME_FILTERS else value)
            for name, value in (params or {}).items()}


def start_export(company_id, filters):
    """Record a pending export, commit it, and generate the file in the background."""
    stored = StoredFile(company_id=company_id, kind=KIND, status="pending",
                        path=os.path.join("exports", str(company_id), f"calls-{uuid.uuid4().hex}.csv"),
                        params=serialise_filters(filters))
    Session.add(stored)
    Session.commit()
    app = current_app._get_current_object()
    threading.Thread(target=generate_in_background, args=(app, stored.id),
                     name=f"calls-export-{stored.id}", daemon=True).start()
    return stored


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
    target = absolute_path(stored, app)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".part"
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        for chunk in csv_chunks(export_rows(stored.company_id, deserialise_filters(stored.params))):
            handle.write(chunk)
    os.replace(partial, target)  # a download never sees a half-written file
    stored.size_bytes = os.path.getsize(target)
    stored.status = "ready"
    Session.commit()


def effective_status(stored, now=None):
    """pending | ready | failed; a pending export nobody is writing any more counts as failed."""
    if stored.status == "pending" and (now or utcnow()) - stored.created_at > STALE_AFTER:
        return "failed"
    return stored.status
