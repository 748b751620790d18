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


# --- limits: RedisStorage._previous_window_key / _current_window_key ---------------------------

def test_sliding_window_keys_are_where_limits_counts(redis_url, redis_client):
    from limits.storage import RedisStorage
    storage = RedisStorage(redis_url)
    previous, current = compat.sliding_window_keys(storage, "compat:guard")
    assert storage.acquire_sliding_window_entry("compat:guard", 10, 60)
    assert storage.acquire_sliding_window_entry("compat:guard", 10, 60)
    assert int(redis_client.get(current)) == 2
    redis_client.set(previous, 3, px=50_000)
    previous_count, _previous_ttl, current_count, _current_ttl = \
        storage.get_sliding_window("compat:guard", 60)
    assert (previous_count, current_count) == (3, 2)
    storage.clear_sliding_window("compat:guard", 60)
    assert redis_client.exists(previous, current) == 0
