"""Stored files as HTTP answers: always a download, never rendered inline."""
from flask import current_app, redirect

from gateway_app.extensions import gateway_state
from gateway_app.files import iter_chunks
from gateway_app.files.names import attachment_disposition

SAFE_DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


def download_response(key, filename, content_type, readable=None, size=None):
    """The object under ``key`` as an attachment: a short-lived presigned URL when
    FILE_STORAGE_DOWNLOADS is ``redirect`` and the store has them, else streamed
    (``readable``, if the caller opened it already to learn that it exists)."""
    store = gateway_state().files
    if current_app.config.get("FILE_STORAGE_DOWNLOADS") == "redirect":
        url = store.download_url(key, filename, content_type, current_app.config["FILE_STORAGE_URL_TTL"])
        if url:
            if readable is not None:
                readable.close()
            response = redirect(url, 302)
            response.headers.update(SAFE_DOWNLOAD_HEADERS)
            return response
    readable = readable if readable is not None else store.open(key)
    response = current_app.response_class(iter_chunks(readable), mimetype=content_type,
                                          direct_passthrough=True)
    response.headers["Content-Disposition"] = attachment_disposition(filename)
    response.headers.update(SAFE_DOWNLOAD_HEADERS)
    if size is not None:
        response.content_length = size
    return response
