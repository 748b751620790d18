"""Guard tests of gateway_app/compat.py: one per use of a library's private name. A
release of the library that changes what a use relies on fails here, naming the use."""
from werkzeug.datastructures import Headers

from gateway_app import compat


# --- werkzeug: Headers._list ----------------------------------------------------------------

def test_headers_made_unchecked_are_what_werkzeug_would_hold():
    pairs = [("ETag", '"abc"'), ("Age", "3"), ("X-Cache", "HIT-L1")]
    made = compat.headers_unchecked(pairs)
    assert made == Headers(pairs) and made.get("age") == "3" and len(made) == 3
    assert made.to_wsgi_list() == Headers(pairs).to_wsgi_list()
    pairs.append(("X-Later", "1"))
    assert "X-Later" not in made                  # a copy of the pairs, not the caller's list


def test_headers_extended_unchecked_are_what_extend_gives():
    added = [("X-Request-ID", "abcd1234"), ("X-Frame-Options", "DENY")]
    extended, appended = Headers([("Content-Type", "application/json")]), Headers([("Content-Type", "application/json")])
    extended.extend(added)
    compat.extend_headers_unchecked(appended, added)
    assert appended == extended and appended.to_wsgi_list() == extended.to_wsgi_list()
    assert appended.getlist("x-frame-options") == ["DENY"]
