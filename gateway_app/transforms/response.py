"""What a response transform does to a service's answer before the gateway sends it on."""
import itertools
from dataclasses import dataclass

from .body import JSON_MEDIA_TYPE, encoded, json_object
from .operations import JsonFields, Operations, ResponseHeaders

# validators and digests of the body as the service made it
DESCRIBES_THE_BODY = ("ETag", "Content-MD5", "Digest", "Repr-Digest", "Content-Digest")


@dataclass(frozen=True, slots=True)
class ResponseTransform:
    headers: Operations
    json: Operations
    max_body_bytes: int

    @classmethod
    def from_config(cls, config, max_body_bytes):
        """None when ``config`` declares nothing to do."""
        if not config:
            return None
        made = cls(headers=Operations.from_config(config.get("headers")),
                   json=Operations.from_config(config.get("json")),
                   max_body_bytes=max_body_bytes)
        return made if (made.headers or made.json) else None

    def apply(self, response):
        if self.headers:
            self.headers.apply(ResponseHeaders(response.headers))
        if self.json and self.body_is_transformable(response):
            self.rewrite_json(response)
        return response

    def body_is_transformable(self, response):
        """A JSON body the gateway can read as it is: not compressed, not a file handed to
        the server, not a stream declared longer than ``max_body_bytes``."""
        if response.mimetype != JSON_MEDIA_TYPE or response.direct_passthrough:
            return False
        if response.headers.getlist("Content-Encoding"):
            return False
        length = response.content_length
        return not (response.is_streamed and length is not None and length > self.max_body_bytes)

    def rewrite_json(self, response):
        if response.is_streamed:
            body = read_bounded(response, self.max_body_bytes)
            if body is None:
                return
            response.set_data(body)   # read whole: from now on an ordinary body
        else:
            body = response.get_data()
        document = json_object(body)
        if document is None or not self.json.apply(JsonFields(document)):
            return
        response.set_data(encoded(document))   # werkzeug sets Content-Length again
        present = {name.lower() for name in response.headers.keys()}
        for name in DESCRIBES_THE_BODY:
            if name.lower() in present:
                del response.headers[name]


def read_bounded(response, limit):
    """A streamed body, whole, when it ends within ``limit`` bytes; else None, and the
    response streams on as it was (the part read first, then the rest)."""
    source = response.response
    chunks = iter(source)
    head, size = [], 0
    for chunk in chunks:
        chunk = chunk.encode("utf-8") if isinstance(chunk, str) else chunk   # as werkzeug encodes
        head.append(chunk)
        size += len(chunk)
        if size > limit:
            response.response = itertools.chain(head, chunks)
            if hasattr(source, "close"):   # the upstream's connection, released when the server is done
                response.call_on_close(source.close)
            return None
    if hasattr(source, "close"):
        source.close()
    return b"".join(head)
