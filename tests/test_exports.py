"""Asynchronous call exports in the file store, on file:// and s3://: tenant-scoped, kept
for the policy's retention and then deleted by the worker."""
import csv
import datetime as dt
import io
import time

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.extensions import gateway_state
from gateway_app.files.local import LocalFileStore
from gateway_app.models import StoredFile
from gateway_app.outbox import run_worker
from gateway_app.services import call_exports, calls_queries
from tests.conftest import insert_call, sign_up
from tests.support.reads import get

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def wait_for_export(tenant, location):
    for _ in range(200):  # the background writer takes milliseconds here; few polls, few requests
        response = get(tenant, location)
        if response.status_code != 202:
            return response
        assert response.get_json()["status"] == "pending"
        time.sleep(0.05)
    raise AssertionError("export still pending")


def rows_of(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def owner(files_client):
    return sign_up(files_client)


def start_export(tenant, **params):
    accepted = get(tenant, "/api/v1/calls/export", **{"async": "true"}, **params)
    assert accepted.status_code == 202, accepted.get_json()
    return accepted


def test_an_export_is_stored_and_downloaded_later_by_its_company_only(files_app, files_client, owner):
    company_id = owner.company["id"]
    for n in range(3):
        insert_call(company_id, BASE - dt.timedelta(minutes=n), status="missed" if n else "answered")

    accepted = start_export(owner, status="missed")
    body = accepted.get_json()
    assert accepted.headers["Location"] == body["download_url"] == f"/api/v1/calls/exports/{body['id']}"
    done = wait_for_export(owner, body["download_url"])

    assert done.status_code == 200 and done.mimetype == "text/csv"
    assert done.headers["Content-Disposition"].startswith(f'attachment; filename="calls-export-{body["id"]}.csv"')
    assert done.headers["X-Content-Type-Options"] == "nosniff"
    rows = rows_of(done)
    assert rows[0] == list(calls_queries.EXPORT_HEADER)
    assert [row[4] for row in rows[1:]] == ["missed", "missed"]
    stored = Session.get(StoredFile, body["id"])
    assert int(done.headers["Content-Length"]) == stored.size_bytes == len(done.get_data())
    # in the store, under the company's prefix
    assert [item.key for item in gateway_state(files_app).files.list(f"exports/{company_id}/")] == [stored.path]
    # another company cannot fetch it, nor learn that it exists
    other = sign_up(files_client)
    refused = get(other, body["download_url"])
    assert refused.status_code == 404
    assert refused.mimetype == "application/problem+json"
    assert get(owner, "/api/v1/calls/exports/999999").status_code == 404


def test_an_export_that_cannot_be_written_is_reported_failed(files_app, owner, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage directory should be")
    gateway_state(files_app).files = LocalFileStore(str(blocker))
    insert_call(owner.company["id"], BASE)

    accepted = start_export(owner)
    failed = wait_for_export(owner, accepted.headers["Location"])

    assert failed.status_code == 410
    assert failed.get_json()["export_id"] == accepted.get_json()["id"]


def test_an_export_whose_file_is_gone_answers_410(files_app, owner):
    insert_call(owner.company["id"], BASE)
    accepted = start_export(owner)
    assert wait_for_export(owner, accepted.headers["Location"]).status_code == 200
    gateway_state(files_app).files.delete(Session.get(StoredFile, accepted.get_json()["id"]).path)

    gone = get(owner, accepted.headers["Location"])

    assert gone.status_code == 410 and gone.get_json()["title"] == "Export Gone"


def test_the_worker_deletes_exports_past_the_retention(files_app, files_client, owner):
    insert_call(owner.company["id"], BASE)
    old, recent = start_export(owner), start_export(owner)
    for accepted in (old, recent):
        assert wait_for_export(owner, accepted.headers["Location"]).status_code == 200
    old_row = Session.get(StoredFile, old.get_json()["id"])
    old_path = old_row.path
    retention = files_app.extensions["gateway"].policy["files"]["export_retention_days"]
    assert retention == 7
    # the old one was made 7 days and a minute ago, the recent one 6 days and 23 hours ago
    Session.get(StoredFile, recent.get_json()["id"]).created_at = call_exports.utcnow() - dt.timedelta(days=7) + dt.timedelta(hours=1)
    old_row.created_at = call_exports.utcnow() - dt.timedelta(days=7, minutes=1)
    Session.commit()

    run_worker(once=True, housekeeping=[(3600, call_exports.delete_expired_exports)])

    store = gateway_state(files_app).files
    assert get(owner, old.headers["Location"]).status_code == 404
    assert not store.exists(old_path)
    assert get(owner, recent.headers["Location"]).status_code == 200
    assert Session.scalars(select(StoredFile.id)).all() == [recent.get_json()["id"]]


def test_the_retention_is_read_from_the_policy(files_app, owner):
    insert_call(owner.company["id"], BASE)
    accepted = start_export(owner)
    assert wait_for_export(owner, accepted.headers["Location"]).status_code == 200
    files_app.extensions["gateway"].policy["files"]["export_retention_days"] = 1
    later = call_exports.utcnow() + dt.timedelta(days=1, minutes=1)

    assert call_exports.delete_expired_exports(files_app, now=later - dt.timedelta(minutes=2)) == 0
    assert call_exports.delete_expired_exports(files_app, now=later) == 1
    assert get(owner, accepted.headers["Location"]).status_code == 404


def test_a_store_that_is_down_answers_503_with_retry_after(files_app, owner):
    from gateway_app.files import open_store
    from tests.support.servers import free_port
    insert_call(owner.company["id"], BASE)
    accepted = start_export(owner)
    assert wait_for_export(owner, accepted.headers["Location"]).status_code == 200
    gateway_state(files_app).files = open_store("s3://bucket/prefix", {
        "endpoint_url": f"http://127.0.0.1:{free_port()}", "region": "us-east-1",
        "access_key_id": "k", "secret_access_key": "s", "connect_timeout": 0.3, "read_timeout": 0.3})

    down = get(owner, accepted.headers["Location"])

    assert down.status_code == 503
    assert down.headers["Retry-After"] == "5"
    assert down.get_json()["type"].endswith("/storage-unavailable")


def test_downloads_may_be_redirects_to_a_presigned_url(files_app, owner, file_storage):
    import requests
    files_app.config["FILE_STORAGE_DOWNLOADS"] = "redirect"
    insert_call(owner.company["id"], BASE)
    accepted = start_export(owner)
    done = wait_for_export(owner, accepted.headers["Location"])
    if file_storage["FILE_STORAGE_URL"].startswith("file:"):
        assert done.status_code == 200   # no URLs of its own: streamed as before
        return
    assert done.status_code == 302
    assert done.headers["X-Content-Type-Options"] == "nosniff"
    fetched = requests.get(done.headers["Location"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Disposition"].startswith("attachment;")
    assert fetched.text.splitlines()[0] == ",".join(calls_queries.EXPORT_HEADER)


def test_gateway_worker_runs_the_retention(files_app, owner, file_storage, database_url, monkeypatch):
    """`gateway worker --once` itself (in this process, configured by the environment)."""
    from gateway_app import cli
    insert_call(owner.company["id"], BASE)
    accepted = start_export(owner)
    assert wait_for_export(owner, accepted.headers["Location"]).status_code == 200
    stored = Session.get(StoredFile, accepted.get_json()["id"])
    stored.created_at = call_exports.utcnow() - dt.timedelta(days=8)
    Session.commit()
    Session.remove()
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FILE_STORAGE_URL", file_storage["FILE_STORAGE_URL"])
    for name, variable in (("endpoint_url", "FILE_STORAGE_ENDPOINT_URL"), ("region", "AWS_REGION"),
                           ("access_key_id", "AWS_ACCESS_KEY_ID"), ("secret_access_key", "AWS_SECRET_ACCESS_KEY")):
        if file_storage.get("FILE_STORAGE_S3"):
            monkeypatch.setenv(variable, file_storage["FILE_STORAGE_S3"][name])
    for name in ("REDIS_URL", "REDIS_TLS_URL", "GATEWAY_ENV", "DYNO"):
        monkeypatch.delenv(name, raising=False)

    assert cli.main(["worker", "--once"]) == 0

    assert get(owner, accepted.headers["Location"]).status_code == 404
    assert not gateway_state(files_app).files.exists(stored.path)
