"""File storage for uploads, exports and backups (docs/files.md).

``FILE_STORAGE_URL`` chooses the backend: ``file:///path`` (local.py) or
``s3://bucket/prefix`` (s3.py). Everything else uses the FileStore interface (store.py)
of the app's one store, ``GatewayState.files``, built at start by ``build_store``.
"""
import logging
import urllib.parse

from .store import (FileMissing, FileStore, InvalidKey, StorageError, StorageUnavailable,
                    StoredObject, iter_chunks)

log = logging.getLogger("gateway.files")

__all__ = ["FileMissing", "FileStore", "InvalidKey", "StorageError", "StorageUnavailable",
           "StoredObject", "build_store", "iter_chunks", "open_store", "parse_storage_url"]


class StorageUrlError(ValueError):
    """FILE_STORAGE_URL names no store the gateway can use."""


def parse_storage_url(url):
    """("file", path) or ("s3", (bucket, prefix))."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        # file:///abs/path; file://localhost/abs/path; file://relative/path as written
        path = parts.path if parts.netloc in ("", "localhost") else parts.netloc + parts.path
        if not path:
            raise StorageUrlError(f"FILE_STORAGE_URL {url!r} names no directory")
        return "file", urllib.parse.unquote(path)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageUrlError(f"FILE_STORAGE_URL {url!r} names no bucket (s3://bucket/prefix)")
        return "s3", (parts.netloc, urllib.parse.unquote(parts.path).strip("/"))
    raise StorageUrlError(f"FILE_STORAGE_URL {url!r}: expected file:///path or s3://bucket/prefix")


def open_store(url, s3_options=None):
    kind, where = parse_storage_url(url)
    if kind == "file":
        from .local import LocalFileStore
        return LocalFileStore(where)
    from .s3 import S3FileStore, s3_client
    bucket, prefix = where
    return S3FileStore(bucket, prefix, s3_client(s3_options or {}))


def build_store(config):
    """The store a configuration names; a production start on a dyno's disk is warned about."""
    store = open_store(config["FILE_STORAGE_URL"], config.get("FILE_STORAGE_S3"))
    if config.get("ENV_PRODUCTION") and store.ephemeral_on_platform:
        log.warning("FILE_STORAGE_URL is %s, a local disk: on a Heroku-style platform it is "
                    "ephemeral (lost at each restart, not shared between dynos), so exports, "
                    "uploads and backups kept there will vanish; set FILE_STORAGE_URL to an "
                    "s3:// store", store.description)
    return store
