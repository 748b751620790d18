"""The one place where the gateway uses a library's private names.

Each use below says why no documented interface serves, and names the library version
it was checked against; tests/test_compat.py holds a guard test per use, so a release
that changes what it relies on fails there, not in production.
"""
from werkzeug.datastructures import Headers

# --- werkzeug 3.1.9: a Headers keeps its (name, value) pairs in the list ``_list`` -------
#
# Every documented way to add a header (add, extend, the constructor) checks the value
# for newlines, one call per header. The request path adds about ten headers to every
# answer from values it made itself from checked parts, and without the check the
# headers and GatewayResponse.get_wsgi_headers (responses.py) are worth more than the 5%
# a speed-up needs (bench/bench_cache.py, rate-limited L1 hit).


def extend_headers_unchecked(headers, pairs):
    """``headers.extend(pairs)`` without werkzeug's check of each value."""
    headers._list.extend(pairs)


def headers_unchecked(pairs):
    """``Headers(pairs)`` without werkzeug's check of each value; a copy of ``pairs``."""
    headers = Headers()
    headers._list = list(pairs)
    return headers
