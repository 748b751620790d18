"""Every answer's shaping: body size, request id, security headers, header hygiene. (The
seed's stage 7 proper, the transforms declared per service, is transforms.py.)"""
import io

from marshmallow import Schema, fields, validate

from ..errors import GatewayProblem
from ..policy_types import positive, strict
from ..responses import append_made_headers, header_names
from .base import Stage


@strict
class TransformSchema(Schema):
    max_content_length = fields.Integer(required=True, validate=positive)
    # checked here because the transform stage adds them without werkzeug's check
    security_headers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]+$")),
        values=fields.String(validate=validate.Regexp(r"^[^\r\n]*$")), load_default=dict)


def private(cache_control):
    """``cache_control`` made private, unless it already forbids storing."""
    directives = [part.strip() for part in cache_control.split(",") if part.strip()]
    lowered = [part.lower() for part in directives]
    if "private" in lowered or "no-store" in lowered:
        return cache_control
    return ", ".join(["private"] + [part for part, low in zip(directives, lowered) if low != "public"])


class TransformStage(Stage):
    name = "transform"
    section = "transform"   # of conf/gateway.yaml; its schema is above
    always_after = True

    def __init__(self, config, upload_limits=None):
        self.max_content_length = config["max_content_length"]
        # a view declaring gateway_policy(upload=kind) takes bodies up to its kind's limit
        self.upload_limits = upload_limits or {}
        self.security_headers = [(name, name.lower(), value)
                                 for name, value in config.get("security_headers", {}).items()]

    def before(self, ctx, request):
        environ = request.environ
        upload = ctx.route_policy.get("upload")
        if upload is not None:
            return self.bound_upload(request, self.upload_limits[upload])
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            self.bound_unsized_body(environ)
        elif environ.get("CONTENT_LENGTH") and (request.content_length or 0) > self.max_content_length:
            raise self.too_large()
        return None

    def bound_unsized_body(self, environ):
        """A body of no declared length (chunked) is read here, up to one byte past the
        limit: over it, 413. werkzeug would stop reading at the limit without a word, and
        the handler would see a cut-off body. Within it, the body is handed on with its
        length, like any other."""
        body = environ["wsgi.input"].read(self.max_content_length + 1)
        if len(body) > self.max_content_length:
            raise self.too_large()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

    def bound_upload(self, request, limit):
        """An upload is never read whole into memory, chunked or not: werkzeug's form
        parser streams it to a temporary file and stops with 413 past ``limit``."""
        if (request.content_length or 0) > limit:
            raise self.too_large(limit)
        request.max_content_length = limit
        return None

    def too_large(self, limit=None):
        return GatewayProblem(413, "Request Entity Too Large",   # werkzeug's title for it
                              f"The request body exceeds the limit of {limit or self.max_content_length} bytes.")

    def after(self, ctx, request, response):
        # one pass over the headers instead of one search per header set, kept or removed
        headers = response.headers
        present = header_names(headers)
        added = [(name, value) for name, lowered, value in self.security_headers
                 if lowered not in present]
        if "x-request-id" in present:   # a remote instance's own id is replaced
            headers["X-Request-ID"] = ctx.request_id
        else:
            added.append(("X-Request-ID", ctx.request_id))
        if ctx.principal is not None:
            # an answer for a caller is theirs: no shared cache between client and gateway keeps it
            if "cache-control" not in present:
                added.append(("Cache-Control", "private"))
            else:
                headers["Cache-Control"] = private(headers["Cache-Control"])
        append_made_headers(headers, added)
        # Retry-After belongs to 429 and 503 only (docs/contract.md sections 4 and 6)
        if "retry-after" in present and response.status_code not in (429, 503):
            del headers["Retry-After"]
        return response
