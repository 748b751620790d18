"""Call recordings copied from Retell into the file store, so they outlive its retention.

A Retell ``call_ended`` or ``call_analyzed`` event that carries ``recording_url`` queues
an outbox message with the call's id and the URL (webhooks/retell.py); `gateway worker`
delivers it here: the recording is downloaded through the Retell client (its circuit
breaker, timeouts and retries) and streamed into the store, never whole in memory. A
fault of Retell or of the store retries with the outbox's backoff; a refusal (4xx) or a
file over ``files.recordings.max_bytes`` gives up.
"""
import mimetypes
import urllib.parse

import requests

from ..db import Session
from ..extensions import gateway_state
from ..files.streams import BoundedReader, ChunksReader, TooLarge
from ..integrations.http import client_for, outbox_delivery
from ..integrations.retell import RetellClient
from ..models import Call
from ..outbox import PermanentFailure, RetryLater, enqueue

RECORDING_KIND = "retell.recording"
DEFAULT_TYPE = "audio/wav"   # what Retell records
CHUNK = 64 * 1024
# mimetypes knows audio/wav only as audio/x-wav on some systems
EXTENSIONS = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/mpeg": ".mp3",
              "audio/ogg": ".ogg", "audio/webm": ".webm"}


def queue_copy(session, call, url):
    """Queue the copy of ``call``'s recording, once: not when it is stored already."""
    if not url or call.recording_path is not None:
        return None
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        return None
    return enqueue(session, RECORDING_KIND, {"call_id": call.id, "url": url}, company_id=call.company_id)


def recording_type(response, url):
    declared = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if declared.startswith("audio/"):
        return declared
    return mimetypes.guess_type(urllib.parse.urlsplit(url).path)[0] or DEFAULT_TYPE


def deliver_recording(message):
    """Outbox handler: copy one recording into the store."""
    call = Session.get(Call, message.payload["call_id"])
    if call is None or call.recording_path is not None:
        return None   # the call is gone, or an earlier message of its events stored it
    url = message.payload["url"]
    limit = gateway_state().policy["files"]["recordings"]["max_bytes"]
    with outbox_delivery():
        response = client_for(RetellClient).download_recording(url)
    try:
        if int(response.headers.get("Content-Length") or 0) > limit:
            raise PermanentFailure(f"the recording is larger than {limit} bytes")
        content_type = recording_type(response, url)
        extension = EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".audio"
        path = f"recordings/{call.company_id}/{call.id}{extension}"
        size = gateway_state().files.save(
            path, BoundedReader(ChunksReader(response.iter_content(CHUNK)), limit), content_type)
    except TooLarge as exc:
        raise PermanentFailure(f"the recording is larger than {limit} bytes") from exc
    except requests.RequestException as exc:   # cut off while the body was read
        raise RetryLater(f"retell recording download interrupted: {type(exc).__name__}") from exc
    finally:
        response.close()
    call.recording_path, call.recording_content_type, call.recording_size = path, content_type, size
    return None


def open_recording(call):
    """A readable stream of the stored recording; FileMissing when there is none."""
    return gateway_state().files.open(call.recording_path)
