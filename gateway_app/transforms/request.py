"""What a request transform does to the request the service receives.

The request is changed where every reader finds it: the WSGI environ (which a local
view's request and the proxy both read) and the few values werkzeug has already worked
out from it, through werkzeug's documented interface (``request.path`` is a plain
attribute; ``args``, ``content_length`` and ``stream`` are cached properties: setting one
replaces the cached value, deleting one makes werkzeug work it out again when asked).
"""
import io
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

from werkzeug.http import parse_options_header

from ..errors import GatewayProblem
from .body import JSON_MEDIA_TYPE, encoded, json_object
from .operations import EnvironHeaders, JsonFields, Operations, QueryPairs


@dataclass(frozen=True, slots=True)
class RequestTransform:
    strip_prefix: str | None
    add_prefix: str | None
    headers: Operations
    query: Operations
    json: Operations
    max_body_bytes: int

    @classmethod
    def from_config(cls, config, max_body_bytes):
        """None when ``config`` declares nothing to do."""
        if not config:
            return None
        path = config.get("path") or {}
        made = cls(strip_prefix=path.get("strip_prefix"), add_prefix=path.get("add_prefix"),
                   headers=Operations.from_config(config.get("headers")),
                   query=Operations.from_config(config.get("query")),
                   json=Operations.from_config(config.get("json")),
                   max_body_bytes=max_body_bytes)
        return made if made.does_something() else None

    def does_something(self):
        return bool(self.strip_prefix or self.add_prefix or self.headers or self.query or self.json)

    def apply(self, request):
        if self.strip_prefix or self.add_prefix:
            self.rewrite_path(request)
        # headers before the body: an operation may set the Content-Type the body is read by
        if self.headers:
            self.headers.apply(EnvironHeaders(request.environ))
        if self.query:
            self.rewrite_query(request)
        if self.json:
            self.rewrite_json(request)

    def rewritten_path(self, path):
        strip = self.strip_prefix
        if strip and (path == strip or path.startswith(strip + "/")):   # whole segments only
            path = path[len(strip):] or "/"
        if self.add_prefix:
            path = self.add_prefix + path
        return path

    def rewrite_path(self, request):
        path = self.rewritten_path(request.path)
        request.path = path
        request.environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")   # PEP 3333

    def rewrite_query(self, request):
        environ = request.environ
        # the environ holds the query's bytes as latin-1; undecodable bytes survive the
        # round trip (surrogateescape), so a parameter no operation names is passed on as sent
        text = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "surrogateescape")
        pairs = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
        if not self.query.apply(QueryPairs(pairs)):
            return
        query = urlencode(pairs, quote_via=quote, errors="surrogateescape")
        environ["QUERY_STRING"] = query
        request.query_string = query.encode("latin-1")
        try:
            del request.args   # werkzeug works it out again, from the new query, when asked
        except KeyError:
            pass               # not worked out yet

    def rewrite_json(self, request):
        environ = request.environ
        media_type = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        if media_type != JSON_MEDIA_TYPE:
            return
        body = request.stream.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            raise GatewayProblem(413, "Request Entity Too Large",
                                 f"This route transforms JSON bodies of at most {self.max_body_bytes} bytes.")
        # an empty body is an empty object, as in Kong: ``add`` gives it its fields
        document = json_object(body) if body else {}
        if document is not None and self.json.apply(JsonFields(document)):
            body = encoded(document)
        hand_on_body(request, body)


def hand_on_body(request, body):
    """``body`` is now the request's body, for a local view and the proxy alike."""
    environ = request.environ
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    request.stream = io.BytesIO(body)
    request.content_length = len(body)
