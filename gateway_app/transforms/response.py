"""What a response transform does to a service's answer before the gateway sends it on."""
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
        """A JSON body the gateway can read whole, as it is: not compressed, not a file
        handed to the server, and not a stream of unknown or excessive length (read whole,
        it would no longer stream)."""
        if response.mimetype != JSON_MEDIA_TYPE or response.direct_passthrough:
            return False
        if "Content-Encoding" in response.headers:
            return False
        if response.is_streamed:
            length = response.content_length
            return length is not None and length <= self.max_body_bytes
        return True

    def rewrite_json(self, response):
        document = json_object(response.get_data())
        if document is None or not self.json.apply(JsonFields(document)):
            return
        response.set_data(encoded(document))   # werkzeug sets Content-Length again
        for name in DESCRIBES_THE_BODY:
            del response.headers[name]
