"""What every file store offers: one small interface, whatever holds the bytes.

Keys are relative, slash-separated paths (``exports/12/calls-<hex>.csv``); a store maps
them onto its medium. Bytes always move as streams: ``save`` reads a file object in
chunks and ``open`` returns one to read in chunks, so no file is ever held whole in
memory. A fault of the medium (S3 unreachable, a full disk) is ``StorageUnavailable``,
which the web process answers with 503 and the worker retries.
"""
import abc
import dataclasses
import datetime as dt
import re

CHUNK_SIZE = 64 * 1024
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class StorageError(Exception):
    """Base of the store's failures."""


class FileMissing(StorageError):
    """No object under this key (deleted by retention, or never written)."""


class StorageUnavailable(StorageError):
    """The medium cannot be used now; the same call may succeed later."""

    retry_after = 5


class InvalidKey(StorageError, ValueError):
    """A key that could escape the store's root or is not a plain relative path."""


@dataclasses.dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: dt.datetime


def checked_key(key):
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"not a file store key: {key!r}")
    return key


class FileStore(abc.ABC):
    """The interface. ``description`` names the store in logs without any secret."""

    description = "file store"
    # the platform's disk disappears with the dyno: a production start warns about it
    ephemeral_on_platform = False

    @abc.abstractmethod
    def save(self, key, stream, content_type=None):
        """Write everything ``stream`` (a binary file object) yields under ``key``; return
        the number of bytes written. A reader never sees a half-written object."""

    @abc.abstractmethod
    def open(self, key):
        """A binary file object reading the object (close it); FileMissing if there is none."""

    @abc.abstractmethod
    def delete(self, key):
        """Remove the object; removing a missing one is not an error."""

    @abc.abstractmethod
    def exists(self, key):
        """Whether an object is stored under ``key``."""

    @abc.abstractmethod
    def list(self, prefix):
        """The objects whose key starts with ``prefix``, as StoredObject, in key order."""

    def download_url(self, key, filename, content_type, expires_in):
        """A short-lived URL that serves the object as an attachment, or None when the
        store has no such URLs (then the gateway streams the object itself)."""
        return None


def iter_chunks(readable, chunk_size=CHUNK_SIZE):
    """The chunks of an open binary file object, closing it at the end."""
    try:
        while True:
            chunk = readable.read(chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        readable.close()
