"""The gateway's response class: Flask's, without copying the headers of a response
that needs no fixing on its way out; and setting several headers in one pass.

Werkzeug's ``get_wsgi_headers`` copies every response's headers - re-checking each
value for newlines, one call per header - so that it can make a Location absolute,
drop Content-Length from a 1xx/204/304 or add one it can compute. A response with
none of that to do is sent with its own headers (``to_wsgi_list`` makes the list the
server gets, so they are never shared); every other response goes through werkzeug.
"""
from flask import Response

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
        names = {name.lower() for name, _value in self.headers}
        return "content-length" in names and not names & REWRITTEN


def put_headers(headers, values):
    """Set each of ``values`` (name -> value) in ``headers``, replacing any copy already
    there, as werkzeug's ``set`` does, but in one pass over the headers for all of them
    (``set`` walks them once per name)."""
    names = {name.lower() for name in values}
    if any(name.lower() in names for name, _value in headers):
        for name, value in values.items():
            headers[name] = value
    else:
        headers.extend(values)
