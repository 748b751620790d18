"""``s3://bucket/prefix``: any S3-compatible store (AWS, the Bucketeer add-on, MinIO) via boto3.

Uploads go through boto3's managed transfer (``upload_fileobj``): a stream larger than
the multipart threshold is sent in parts, so at most ``max_concurrency`` parts are in
memory at once. Downloads read the object's body as a stream, or are handed to the
client as a short-lived presigned URL.
"""
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .store import FileMissing, FileStore, StorageUnavailable, StoredObject, checked_key

PART_SIZE = 5 * 1024 * 1024      # S3's smallest part: objects up to 48 GiB (10,000 parts)
# parts read ahead of the upload; with one reader thread, about (2 + 1) x PART_SIZE in memory
# (s3transfer's TransferConfig documents the footprint; its default is 10 + 5 parts)
PARTS_IN_MEMORY = 2
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class CountingReader:
    """A binary stream passed through, counting the bytes read from it."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def read(self, size=-1):
        chunk = self.stream.read(size)
        self.count += len(chunk)
        return chunk


def s3_client(options):
    """A boto3 client from the settings' FILE_STORAGE_S3 options (None: boto3's own chain)."""
    config = Config(
        connect_timeout=options.get("connect_timeout", 3.05),
        read_timeout=options.get("read_timeout", 20),
        retries={"max_attempts": 3, "mode": "standard"},
        signature_version="s3v4",
        # a custom endpoint (MinIO, a local server) rarely resolves bucket subdomains
        s3={"addressing_style": "path" if options.get("endpoint_url") else "auto"})
    return boto3.session.Session().client(
        "s3", endpoint_url=options.get("endpoint_url"), region_name=options.get("region"),
        aws_access_key_id=options.get("access_key_id"),
        aws_secret_access_key=options.get("secret_access_key"), config=config)


class S3FileStore(FileStore):
    def __init__(self, bucket, prefix, client):
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client
        self.description = f"s3://{bucket}/{self.prefix}"
        self.transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                       max_concurrency=2)
        self.transfer.max_in_memory_upload_chunks = PARTS_IN_MEMORY
        self.transfer.max_submission_concurrency = 1

    def object_key(self, key):
        return self.prefix + checked_key(key)

    def save(self, key, stream, content_type=None):
        counted = CountingReader(stream)
        extra = {"ContentType": content_type} if content_type else None
        with unavailable_on_fault(key):
            self.client.upload_fileobj(counted, self.bucket, self.object_key(key),
                                       ExtraArgs=extra, Config=self.transfer)
        return counted.count

    def open(self, key):
        with unavailable_on_fault(key):
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]

    def delete(self, key):
        with unavailable_on_fault(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def exists(self, key):
        try:
            with unavailable_on_fault(key):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except FileMissing:
            return False
        return True

    def list(self, prefix):
        found = []
        with unavailable_on_fault(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    found.append(StoredObject(item["Key"][len(self.prefix):], item["Size"],
                                              item["LastModified"]))
        return sorted(found, key=lambda item: item.key)

    def download_url(self, key, filename, content_type, expires_in):
        from .names import attachment_disposition
        with unavailable_on_fault(key):
            return self.client.generate_presigned_url("get_object", ExpiresIn=expires_in, Params={
                "Bucket": self.bucket, "Key": self.object_key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": attachment_disposition(filename)})


class unavailable_on_fault:
    """botocore's errors as the store's: a missing key, or a medium that cannot serve."""

    def __init__(self, key):
        self.key = key

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, _traceback):
        if exc is None:
            return False
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING_CODES:
                raise FileMissing(self.key) from None
            raise StorageUnavailable(f"S3 refused {self.key}: {code}") from exc
        if isinstance(exc, BotoCoreError):
            raise StorageUnavailable(f"S3 unreachable for {self.key}: {type(exc).__name__}") from exc
        return False
