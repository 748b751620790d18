"""Top-level JSON fields of a body: which bodies qualify, and how one is written back."""
import json

from .. import strict_json

JSON_MEDIA_TYPE = "application/json"


def json_object(body):
    """The JSON object in ``body``, or None: anything else (an array, a scalar, a body that
    is not JSON) is left as it came, for the service or the client to judge."""
    try:
        document = strict_json.loads(body)
    except strict_json.MalformedJSON:
        return None
    return document if isinstance(document, dict) else None


def encoded(document):
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
