"""Every error the gateway answers is application/problem+json (RFC 9457)."""
import logging

from flask import current_app, g, has_request_context, json, request
from sqlalchemy import exc as sqlalchemy_errors
from werkzeug.exceptions import HTTPException

from .files.store import StorageUnavailable

log = logging.getLogger("gateway.errors")
PROBLEM_TYPE_BASE = "https://voice-gateway.dev/problems/"
WEBARGS_LOCATIONS = {"json", "query", "querystring", "form", "headers", "files", "path",
                     "view_args", "cookies", "json_or_form"}


class GatewayProblem(HTTPException):
    """An HTTP error carrying extra problem fields (layer, limit, service, ...) and headers."""

    def __init__(self, status, title, detail=None, problem_type=None, headers=None, **fields):
        super().__init__(description=detail)
        self.code = status
        self.title = title
        self.problem_type = problem_type
        self.fields = fields
        self.extra_headers = headers or {}


def problem_response(status, title, detail=None, problem_type=None, headers=None, **fields):
    ctx = g.get("gateway")
    body = {
        "type": PROBLEM_TYPE_BASE + (problem_type or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail or title,
        "request_id": ctx.request_id if ctx else None,
    }
    body.update(fields)
    response = current_app.response_class(json.dumps(body), status=status,
                                          mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem_from(problem):
    """The response a GatewayProblem stands for."""
    return problem_response(problem.code, problem.title, problem.description, problem.problem_type,
                            problem.extra_headers, **problem.fields)


def _validation_errors(exc):
    """webargs/flask-smorest put the offending fields under exc.data['messages']."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not messages:
        return None
    # webargs nests by location: {"json": {"field": [...]}} -> {"field": [...]}
    if isinstance(messages, dict) and len(messages) == 1:
        location, inner = next(iter(messages.items()))
        if location in WEBARGS_LOCATIONS and isinstance(inner, dict):
            return inner
    return messages


def handle_http_exception(exc):
    if isinstance(exc, GatewayProblem):
        return problem_from(exc)
    status = exc.code or 500
    title = exc.name
    detail = ((getattr(exc, "data", None) or {}).get("message")  # flask_smorest.abort(message=)
              or exc.description)
    fields = {}
    errors = _validation_errors(exc)
    if status == 422:
        fields["errors"] = errors or {}
        detail = "The request did not match the schema; see errors for the offending fields."
    elif status == 400 and errors:
        flat = str(errors)
        if "Invalid JSON" in flat or "JSON" in flat:
            title, detail = "Malformed JSON", "The request body is not valid JSON."
        else:
            fields["errors"] = errors
    elif status == 413:
        limit = request.max_content_length if has_request_context() else None
        detail = (f"The request body exceeds the limit of "
                  f"{limit or current_app.config.get('MAX_CONTENT_LENGTH')} bytes.")
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    return problem_response(status, title, detail, headers=headers, **fields)


DATABASE_RETRY_AFTER = 5   # seconds: pooled connections are checked (pre-ping) and remade
# a database that is down or cut off, not a statement that is wrong (that stays a 500)
DATABASE_UNAVAILABLE = (sqlalchemy_errors.OperationalError, sqlalchemy_errors.InterfaceError,
                        sqlalchemy_errors.DisconnectionError, sqlalchemy_errors.TimeoutError)


def handle_database_unavailable(exc):
    """The database could not be reached or answered with a failure of its own (lost
    connection, timeout, a pool with no connection to give): 503, and the request's
    transaction is dropped so the next one starts clean."""
    from .db import end_session
    end_session()
    log.warning("database unavailable: %s", type(exc).__name__,
                extra={"request_id": getattr(g.get("gateway"), "request_id", None)})
    return problem_response(503, "Service Unavailable",
                            "The database is unreachable; try again shortly.",
                            problem_type="database-unavailable",
                            headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


def handle_storage_unavailable(exc):
    """The file store could not be used (S3 unreachable, a disk error): 503, retry soon."""
    log.warning("file storage unavailable: %s", exc,
                extra={"request_id": getattr(g.get("gateway"), "request_id", None)})
    return problem_response(503, "Service Unavailable",
                            "File storage is unreachable; try again shortly.",
                            problem_type="storage-unavailable",
                            headers={"Retry-After": str(exc.retry_after)})


def handle_unexpected_exception(exc):
    # The traceback goes to the log with the request id; the client gets neither.
    log.exception("unhandled error", extra={"request_id": getattr(g.get("gateway"), "request_id", None)})
    return problem_response(500, "Internal Server Error",
                            "The gateway failed to handle the request; quote the request id.")


def install(app):
    app.register_error_handler(HTTPException, handle_http_exception)
    for unavailable in DATABASE_UNAVAILABLE:
        app.register_error_handler(unavailable, handle_database_unavailable)
    app.register_error_handler(StorageUnavailable, handle_storage_unavailable)
    app.register_error_handler(Exception, handle_unexpected_exception)
