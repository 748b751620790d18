"""The gateway's response class: Flask's, without copying the headers of a response
that needs no fixing on its way out; and adding headers without re-checking values the
gateway made itself.

Werkzeug's ``get_wsgi_headers`` copies every response's headers - re-checking each
value for newlines, one call per header - so that it can make a Location absolute,
drop Content-Length from a 1xx/204/304 or add one it can compute. A response with
none of that to do is sent with its own headers (``to_wsgi_list`` makes the list the
server gets, so they are never shared); every other response goes through werkzeug.
"""
from flask import Response

from . import compat

# headers werkzeug rewrites on the way out
REWRITTEN = frozenset(("location", "content-location"))


class GatewayResponse(Response):
    def get_wsgi_headers(self, environ):
        if self.nothing_to_fix():
            return self.headers
        return super().get_wsgi_headers(environ)

    def nothing_to_fix(self):
        status = self.status_code
        if not 200 <= status < 300 or status == 204:
            return False
        names = header_names(self.headers)
        return "content-length" in names and not names & REWRITTEN


def header_names(headers):
    """The lower-cased names in werkzeug ``headers``."""
    return {name.lower() for name, _value in headers}


def append_made_headers(headers, pairs):
    """Append (name, value) ``pairs`` to werkzeug ``headers`` without its check of each
    value for newlines, for values the gateway made itself from checked parts: names and
    values from the policy (checked when it is loaded), digits, hex digests, http_sfv's
    output, a request id matched against context.REQUEST_ID_PATTERN (compat.py)."""
    compat.extend_headers_unchecked(headers, pairs)


def made_headers(pairs):
    """A werkzeug Headers holding ``pairs``, made as in ``append_made_headers``."""
    return compat.headers_unchecked(pairs)
