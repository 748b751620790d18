"""gunicorn's gevent worker, answering the requests gunicorn itself refuses before the
app sees them (a request line or headers too large, a malformed request) with
``application/problem+json`` like every other error (docs/contract.md section 8), where
gunicorn would send an HTML page. gunicorn documents ``worker_class`` as taking a
subclass of its workers; the refusal itself is still gunicorn's."""
import json

from gunicorn.http import errors as http_errors
from gunicorn.util import write_nonblock
from gunicorn.workers.ggevent import GeventWorker

from .context import accept_request_id
from .errors import PROBLEM_TYPE_BASE

# gunicorn's exception -> (status, title); any other error keeps gunicorn's own answer
REFUSALS = (
    (http_errors.LimitRequestLine, 414, "URI Too Long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    ((http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod,
      http_errors.InvalidHTTPVersion, http_errors.InvalidHeader, http_errors.InvalidHeaderName,
      http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator,
      http_errors.ObsoleteFolding), 400, "Bad Request"),
)


def refusal_for(exc):
    for kinds, status, title in REFUSALS:
        if isinstance(exc, kinds):
            return status, title
    return None


def problem_bytes(status, title, detail):
    body = json.dumps({"type": PROBLEM_TYPE_BASE + title.lower().replace(" ", "-"),
                       "title": title, "status": status, "detail": detail,
                       "request_id": accept_request_id(None)}).encode()
    head = (f"HTTP/1.1 {status} {title}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class ProblemGeventWorker(GeventWorker):
    def handle_error(self, req, client, addr, exc):
        refusal = refusal_for(exc)
        if refusal is None:
            return super().handle_error(req, client, addr, exc)
        status, title = refusal
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            write_nonblock(client, problem_bytes(status, title, f"{title}: {exc}"))
        except Exception:   # the client went away: nothing to tell it
            self.log.debug("Failed to send error message.")
        return None
