"""The gateway's WSGI app with an SQL statement counter, for bench/bench_services.py only.

``gunicorn -c conf/gunicorn.conf.py bench.count_queries_app:app`` with
GATEWAY_COUNT_QUERIES=1: every response carries ``X-SQL-Queries``, the number of
statements the request executed. Production code stays free of the counter.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import threading  # noqa: E402  (greenlet-local once gevent has patched it)

from sqlalchemy import event  # noqa: E402

from gateway_app import create_app  # noqa: E402

app = create_app()
_per_request = threading.local()


def _count(*_args):
    _per_request.count = getattr(_per_request, "count", 0) + 1


class QueryCountingMiddleware:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        _per_request.count = 0

        def start_with_count(status, headers, exc_info=None):
            headers.append(("X-SQL-Queries", str(getattr(_per_request, "count", 0))))
            return start_response(status, headers, exc_info)
        return self.wsgi_app(environ, start_with_count)


if os.environ.get("GATEWAY_COUNT_QUERIES") == "1":
    event.listen(app.extensions["gateway_engine"], "before_cursor_execute", _count)
    app.wsgi_app = QueryCountingMiddleware(app.wsgi_app)
