"""The file store on both backends: file:// and s3:// (moto's server on loopback)."""
import io
import logging
import tracemalloc

import pytest

from gateway_app.files import FileMissing, InvalidKey, StorageUnavailable, build_store, open_store
from gateway_app.files.names import attachment_disposition, sanitised_filename
from gateway_app.settings import SettingsError, from_environment


class PatternStream(io.RawIOBase):
    """``size`` bytes of a repeating pattern, made as they are read: never whole in memory."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        self.left -= n
        return n


@pytest.fixture
def store(file_storage):
    return build_store({"FILE_STORAGE_URL": file_storage["FILE_STORAGE_URL"],
                        "FILE_STORAGE_S3": file_storage.get("FILE_STORAGE_S3")})


def test_saved_bytes_are_read_back_listed_and_deleted(store):
    assert store.save("exports/1/a.csv", io.BytesIO(b"id,name\n1,x\n"), "text/csv") == 12
    store.save("exports/1/b.csv", io.BytesIO(b""), "text/csv")
    store.save("exports/2/c.csv", io.BytesIO(b"other"), "text/csv")

    with store.open("exports/1/a.csv") as handle:
        assert handle.read() == b"id,name\n1,x\n"
    listed = store.list("exports/1/")
    assert [(item.key, item.size) for item in listed] == [("exports/1/a.csv", 12), ("exports/1/b.csv", 0)]
    assert listed[0].modified.tzinfo is not None
    assert store.exists("exports/1/a.csv")

    store.delete("exports/1/a.csv")
    store.delete("exports/1/a.csv")   # already gone: not an error
    assert not store.exists("exports/1/a.csv")
    with pytest.raises(FileMissing):
        store.open("exports/1/a.csv")
    assert [item.key for item in store.list("exports/")] == ["exports/1/b.csv", "exports/2/c.csv"]


def test_a_save_replaces_the_object_whole(store):
    store.save("k/file.bin", io.BytesIO(b"first version, longer"))
    store.save("k/file.bin", io.BytesIO(b"second"))
    with store.open("k/file.bin") as handle:
        assert handle.read() == b"second"


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../../b", "a//b", "", "a/.hidden", "a\\b"])
def test_keys_that_could_leave_the_store_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.save(key, io.BytesIO(b"x"))


def test_large_files_move_as_streams_both_ways(store):
    size = 64 * 1024 * 1024   # thirteen S3 parts
    tracemalloc.start()
    try:
        assert store.save("big/file.bin", PatternStream(size), "application/octet-stream") == size
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        with store.open("big/file.bin") as handle:
            first = handle.read(1024)
            read += len(first)
            while chunk := handle.read(256 * 1024):
                read += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == bytes(range(256)) * 4
    assert read == size
    # at most a few parts in memory at once, never the file
    assert upload_peak < size / 2, upload_peak
    assert download_peak < 4 * 1024 * 1024, download_peak


def test_an_unreachable_s3_store_is_unavailable_not_a_crash():
    from tests.support.servers import free_port
    store = open_store("s3://bucket/prefix", {
        "endpoint_url": f"http://127.0.0.1:{free_port()}", "region": "us-east-1",
        "access_key_id": "k", "secret_access_key": "s", "connect_timeout": 0.5, "read_timeout": 0.5})
    with pytest.raises(StorageUnavailable):
        store.save("a/b", io.BytesIO(b"x"))
    with pytest.raises(StorageUnavailable):
        store.open("a/b")


def test_presigned_urls_serve_the_object_as_an_attachment(moto_s3):
    import requests
    bucket = "gw-presigned-test"
    moto_s3.client().create_bucket(Bucket=bucket)
    store = open_store(f"s3://{bucket}/p", moto_s3.s3_options)
    store.save("docs/report.pdf", io.BytesIO(b"%PDF-1.4 ..."), "application/pdf")

    url = store.download_url("docs/report.pdf", "report é.pdf", "application/pdf", 60)

    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == b"%PDF-1.4 ..."
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert open_store("file:///tmp/x").download_url("a", "a", "text/plain", 60) is None


# --- settings ------------------------------------------------------------------------

def test_the_store_url_and_s3_settings_come_from_the_environment():
    config = from_environment({"FILE_STORAGE_URL": "s3://bucket/some/prefix",
                               "AWS_ENDPOINT_URL": "http://minio:9000", "AWS_REGION": "eu-west-1",
                               "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    assert config["FILE_STORAGE_URL"] == "s3://bucket/some/prefix"
    assert config["FILE_STORAGE_S3"] == {"endpoint_url": "http://minio:9000", "region": "eu-west-1",
                                         "access_key_id": "AK", "secret_access_key": "SK"}
    assert config["FILE_STORAGE_DOWNLOADS"] == "stream"
    store = build_store(config)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix/")


def test_the_bucketeer_add_on_is_used_when_no_url_is_set():
    config = from_environment({"BUCKETEER_BUCKET_NAME": "bucketeer-1234",
                               "BUCKETEER_AWS_ACCESS_KEY_ID": "BK", "BUCKETEER_AWS_SECRET_ACCESS_KEY": "BS",
                               "BUCKETEER_AWS_REGION": "us-east-1"})
    assert config["FILE_STORAGE_URL"] == "s3://bucketeer-1234"
    assert config["FILE_STORAGE_S3"]["access_key_id"] == "BK"
    assert config["FILE_STORAGE_S3"]["secret_access_key"] == "BS"


def test_the_default_store_is_a_directory():
    assert from_environment({})["FILE_STORAGE_URL"].endswith("/var/files")
    assert from_environment({"FILE_STORAGE_DIR": "/srv/files"})["FILE_STORAGE_URL"] == "file:///srv/files"
    assert build_store({"FILE_STORAGE_URL": "file:///srv/files"}).root == "/srv/files"


@pytest.mark.parametrize("url", ["ftp://host/x", "s3:///prefix", "file://", "bucket/prefix"])
def test_a_store_url_the_gateway_cannot_use_stops_the_start(url):
    with pytest.raises(SettingsError, match="FILE_STORAGE_URL"):
        from_environment({"FILE_STORAGE_URL": url})


def test_downloads_mode_is_checked():
    assert from_environment({"FILE_STORAGE_DOWNLOADS": "redirect"})["FILE_STORAGE_DOWNLOADS"] == "redirect"
    with pytest.raises(SettingsError, match="FILE_STORAGE_DOWNLOADS"):
        from_environment({"FILE_STORAGE_DOWNLOADS": "inline"})


def test_production_on_a_local_disk_warns_that_it_is_ephemeral(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="gateway.files"):
        build_store({"FILE_STORAGE_URL": f"file://{tmp_path}", "ENV_PRODUCTION": True})
    assert "ephemeral" in caplog.text and "s3://" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.files"):
        build_store({"FILE_STORAGE_URL": f"file://{tmp_path}", "ENV_PRODUCTION": False})
        build_store({"FILE_STORAGE_URL": "s3://bucket/p", "ENV_PRODUCTION": True,
                     "FILE_STORAGE_S3": {"region": "us-east-1"}})
    assert "ephemeral" not in caplog.text


# --- names -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\photo.png", "photo.png"),
    ("naïve résumé.pdf", "naive_resume.pdf"),
    ('a"b<c>|d\r\n.txt', "abcd_.txt"),
    ("日本語", "file"),
    ("", "file"),
    (".bashrc", "bashrc"),
    ("x" * 300 + ".pdf", "x" * 196 + ".pdf"),
])
def test_filenames_are_sanitised(raw, expected):
    assert sanitised_filename(raw) == expected


def test_content_disposition_is_always_attachment():
    assert attachment_disposition("a b.pdf") == "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
