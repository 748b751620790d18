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


# --- limits 5.8.0: RedisStorage's sliding-window key names -------------------------------
#
# The rate limiter's script (ratelimit/acquire_all.lua) counts in the very keys limits'
# RedisStorage keeps a sliding window in, so that limits' own reads, clears and resets
# see what the script took. limits names the two keys only in its private
# ``_previous_window_key`` and ``_current_window_key``.


def sliding_window_keys(storage, key):
    """(previous, current) Redis keys of ``key``'s sliding window in limits' ``storage``."""
    return (storage.prefixed_key(storage._previous_window_key(key)),
            storage.prefixed_key(storage._current_window_key(key)))
