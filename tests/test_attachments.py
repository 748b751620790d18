"""Customer attachments through HTTP, on file:// and s3://: upload, list, download, delete,
and every refusal (400, 404, 413, 415, 403, 429) as problem+json."""
import io

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.extensions import gateway_state
from gateway_app.files.schema import MULTIPART_OVERHEAD
from gateway_app.models import AuditLog, CustomerAttachment
from tests.conftest import api_key_headers, sign_up, user_with_role

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
MiB = 1024 * 1024


@pytest.fixture
def owner(files_client):
    return sign_up(files_client)


@pytest.fixture
def customer_id(owner):
    created = owner.post("/api/v1/customers", json={"name": "Jane Roe"})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def upload(tenant, customer_id, content=PDF, filename="contract.pdf", content_type="application/pdf",
           field="file", headers=None):
    return tenant.post(f"/api/v1/customers/{customer_id}/attachments",
                       data={field: (io.BytesIO(content), filename, content_type)},
                       content_type="multipart/form-data", headers=headers or {})


def attachments_path(customer_id, attachment_id=None):
    path = f"/api/v1/customers/{customer_id}/attachments"
    return path if attachment_id is None else f"{path}/{attachment_id}"


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    return response.get_json()


def test_an_upload_is_listed_downloaded_and_deleted(files_app, owner, customer_id):
    created = upload(owner, customer_id)

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert set(body) == {"id", "filename", "content_type", "size", "created_at"}
    assert (body["filename"], body["content_type"], body["size"]) == ("contract.pdf", "application/pdf", len(PDF))

    listed = owner.get(attachments_path(customer_id))
    assert listed.status_code == 200 and listed.get_json()["data"] == [body]

    downloaded = owner.get(attachments_path(customer_id, body["id"]))
    assert downloaded.status_code == 200
    assert downloaded.get_data() == PDF
    assert downloaded.mimetype == "application/pdf"
    assert downloaded.headers["Content-Disposition"].startswith('attachment; filename="contract.pdf"')
    assert downloaded.headers["X-Content-Type-Options"] == "nosniff"
    assert int(downloaded.headers["Content-Length"]) == len(PDF)

    stored = Session.get(CustomerAttachment, body["id"])
    store = gateway_state(files_app).files
    assert store.exists(stored.path)
    assert owner.delete(attachments_path(customer_id, body["id"])).status_code == 204
    assert not store.exists(stored.path)
    assert owner.get(attachments_path(customer_id)).get_json()["data"] == []
    assert_problem(owner.get(attachments_path(customer_id, body["id"])), 404)
    assert_problem(owner.delete(attachments_path(customer_id, body["id"])), 404)
    actions = Session.scalars(select(AuditLog.action).where(AuditLog.target_id == str(customer_id))).all()
    assert {"customer.attachment_added", "customer.attachment_deleted"} <= set(actions)


def test_filenames_are_sanitised_and_downloads_never_inline(owner, customer_id):
    created = upload(owner, customer_id, b"hello", filename="../../etc/<script>résumé.txt",
                     content_type="text/plain")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["filename"] == "scriptresume.txt"

    downloaded = owner.get(attachments_path(customer_id, created.get_json()["id"]))
    assert downloaded.headers["Content-Disposition"].startswith('attachment; filename="scriptresume.txt"')
    assert downloaded.headers["X-Content-Type-Options"] == "nosniff"


def test_a_generic_type_is_read_from_the_file_name(owner, customer_id):
    created = upload(owner, customer_id, b"\x89PNG...", filename="photo.png",
                     content_type="application/octet-stream")
    assert created.status_code == 201 and created.get_json()["content_type"] == "image/png"


@pytest.mark.parametrize("content_type, filename", [
    ("text/html", "page.html"), ("image/svg+xml", "logo.svg"), ("application/x-msdownload", "setup.exe"),
    ("application/octet-stream", "mystery.bin")])
def test_a_type_off_the_allow_list_is_415(owner, customer_id, content_type, filename):
    problem = assert_problem(upload(owner, customer_id, b"<script>alert(1)</script>", filename=filename,
                                    content_type=content_type), 415)
    assert "application/pdf" in problem["accepted"]
    assert problem["expected"] == ", ".join(problem["accepted"])   # the members every 415 has
    assert problem["received"] in (content_type, None)   # None: no type read from a generic one
    assert owner.get(attachments_path(customer_id)).get_json()["data"] == []


def test_a_request_without_the_file_part_is_400(owner, customer_id):
    assert_problem(upload(owner, customer_id, field="document"), 400)
    assert_problem(owner.post(attachments_path(customer_id), json={"file": "not a file"}), 400)
    problem = assert_problem(owner.post(attachments_path(customer_id), data=b""), 400)
    assert problem["type"].endswith("/missing-file")


def test_an_unknown_or_foreign_customer_or_attachment_is_404(files_client, owner, customer_id):
    created = upload(owner, customer_id).get_json()
    other = sign_up(files_client)
    foreign = other.post("/api/v1/customers", json={"name": "Other"}).get_json()["id"]

    assert_problem(upload(owner, 999999), 404)
    assert_problem(upload(owner, foreign), 404)
    assert_problem(other.get(attachments_path(customer_id)), 404)
    assert_problem(other.get(attachments_path(customer_id, created["id"])), 404)
    assert_problem(other.delete(attachments_path(customer_id, created["id"])), 404)
    # the right id under another customer of the same company is none either
    second = owner.post("/api/v1/customers", json={"name": "Second"}).get_json()["id"]
    assert_problem(owner.get(attachments_path(second, created["id"])), 404)
    assert owner.get(attachments_path(customer_id, created["id"])).status_code == 200


def test_the_size_limit_is_the_tier_s(files_app, files_client):
    sizes = files_app.extensions["gateway"].policy["files"]["attachments"]["max_bytes"]
    assert (sizes["free"], sizes["pro"]) == (5 * MiB, 25 * MiB)
    free, pro = sign_up(files_client), sign_up(files_client, tier="pro")
    free_customer = free.post("/api/v1/customers", json={"name": "F"}).get_json()["id"]
    pro_customer = pro.post("/api/v1/customers", json={"name": "P"}).get_json()["id"]
    just_over = b"x" * (5 * MiB + 1)

    problem = assert_problem(upload(free, free_customer, just_over, "big.txt", "text/plain"), 413)
    assert problem["max_bytes"] == 5 * MiB
    assert upload(free, free_customer, b"x" * (5 * MiB), "exact.txt", "text/plain").status_code == 201
    assert upload(pro, pro_customer, just_over, "big.txt", "text/plain").status_code == 201
    assert [a["filename"] for a in free.get(attachments_path(free_customer)).get_json()["data"]] == ["exact.txt"]
    # nothing of the refused upload is left in the store
    keys = [item.key for item in gateway_state(files_app).files.list(f"attachments/{free.company['id']}/")]
    assert len(keys) == 1


def test_a_body_over_every_tier_s_limit_is_refused_before_it_is_read(files_app, owner, customer_id):
    largest = max(files_app.extensions["gateway"].policy["files"]["attachments"]["max_bytes"].values())
    problem = assert_problem(owner.post(attachments_path(customer_id), data=b"",
                                        content_type="multipart/form-data; boundary=x",
                                        environ_overrides={"CONTENT_LENGTH": str(largest * 2)}), 413)
    assert str(largest + MULTIPART_OVERHEAD) in problem["detail"]
    # the gateway's usual 1 MiB still holds everywhere else
    assert_problem(owner.post("/api/v1/customers", data=b"x" * (2 * MiB),
                              headers={"Content-Type": "application/json"}), 413)


def test_viewers_may_read_but_not_write(owner, customer_id):
    created = upload(owner, customer_id).get_json()
    viewer, member = user_with_role(owner, "viewer"), user_with_role(owner, "member")

    refused = assert_problem(upload(viewer, customer_id), 403)
    assert refused["permission"] == "attachments:write"
    assert_problem(viewer.delete(attachments_path(customer_id, created["id"])), 403)
    assert viewer.get(attachments_path(customer_id)).status_code == 200
    assert viewer.get(attachments_path(customer_id, created["id"])).status_code == 200
    assert upload(member, customer_id).status_code == 201


def test_a_read_only_api_key_cannot_upload(owner, customer_id):
    read_only = api_key_headers(owner, scopes=("read",))
    assert_problem(upload(owner, customer_id, headers={**read_only, "Authorization": ""}), 403)
    writer = api_key_headers(owner, scopes=("read", "write"))
    assert upload(owner, customer_id, headers={**writer, "Authorization": ""}).status_code == 201


def test_the_cached_list_sees_uploads_and_deletions_at_once(owner, customer_id):
    assert owner.get(attachments_path(customer_id)).get_json()["data"] == []
    assert owner.get(attachments_path(customer_id)).headers["X-Cache"].startswith("HIT")
    created = upload(owner, customer_id).get_json()

    assert [a["id"] for a in owner.get(attachments_path(customer_id)).get_json()["data"]] == [created["id"]]
    owner.delete(attachments_path(customer_id, created["id"]))
    assert owner.get(attachments_path(customer_id)).get_json()["data"] == []


def test_uploads_count_in_the_resource_layer(files_app, owner, customer_id):
    limiter = files_app.extensions["gateway"].policy["rate_limiting"]["layers"]["resource"]["resources"]
    assert limiter["attachments"] == "100/day"
    for n in range(100):
        assert upload(owner, customer_id, b"x", f"n{n}.txt", "text/plain").status_code == 201
    refused = assert_problem(upload(owner, customer_id, b"x", "one-more.txt", "text/plain"), 429)
    assert refused["layer"] == "resource"
    # reads are not uploads
    assert owner.get(attachments_path(customer_id)).status_code == 200


@pytest.mark.gunicorn
@pytest.mark.parametrize("file_storage", ["s3"], indirect=True)
def test_uploads_and_downloads_stream_through_gunicorn_gevent_workers(tmp_path, redis_url, redis_client,
                                                                      file_storage):
    """Real gevent workers: a chunked upload (no declared length) within the tier's size is
    stored whole, one past it is 413, and the download streams back byte for byte."""
    import requests

    from gateway_app.migrate import upgrade
    from tests.conftest import PASSWORD
    from tests.support.servers import Gunicorn

    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    options = file_storage["FILE_STORAGE_S3"]
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url, "GATEWAY_ACCESS_LOG": "0",
                       "FILE_STORAGE_URL": file_storage["FILE_STORAGE_URL"],
                       "FILE_STORAGE_ENDPOINT_URL": options["endpoint_url"], "AWS_REGION": options["region"],
                       "AWS_ACCESS_KEY_ID": options["access_key_id"],
                       "AWS_SECRET_ACCESS_KEY": options["secret_access_key"],
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"}, workers=2).start()
    try:
        http = requests.Session()
        http.post(server.url + "/api/v1/auth/signup", json={
            "company_name": "Served", "name": "Owner", "email": "served@example.com", "password": PASSWORD},
            timeout=10).raise_for_status()
        token = http.post(server.url + "/api/v1/auth/token", json={
            "email": "served@example.com", "password": PASSWORD}, timeout=10).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        customer = http.post(server.url + "/api/v1/customers", json={"name": "C"}, timeout=10).json()["id"]
        url = f"{server.url}/api/v1/customers/{customer}/attachments"

        def chunked_multipart(size):
            boundary = "gwboundary"
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                   f"Content-Type: text/plain\r\n\r\n").encode()
            for start in range(0, size, 256 * 1024):
                yield b"y" * min(256 * 1024, size - start)
            yield f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": "multipart/form-data; boundary=gwboundary"}

        stored = http.post(url, data=chunked_multipart(5 * MiB), headers=headers, timeout=60)
        assert stored.status_code == 201, stored.text
        assert stored.json()["size"] == 5 * MiB
        too_big = http.post(url, data=chunked_multipart(6 * MiB), headers=headers, timeout=60)
        assert too_big.status_code == 413, too_big.text

        downloaded = http.get(f"{url}/{stored.json()['id']}", stream=True, timeout=60)
        assert downloaded.status_code == 200
        assert downloaded.headers["Content-Disposition"].startswith("attachment;")
        assert sum(len(chunk) for chunk in downloaded.iter_content(65536)) == 5 * MiB
    finally:
        server.stop()
