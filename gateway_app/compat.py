"""The one place where the gateway uses a library's private names.

Each use below says why no documented interface serves, and names the library version
it was checked against; tests/test_compat.py holds a guard test per use, so a release
that changes what it relies on fails there, not in production.
"""
import functools

from werkzeug.datastructures import Headers
from werkzeug.routing.matcher import StateMachineMatcher

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


# --- werkzeug 3.1.9: a Map matches through its private ``_matcher``, a StateMachineMatcher -
#
# werkzeug walks its rule state machine on every request, though the answer for a path
# and method cannot change while the rules do, and a Map has no documented way to match
# through anything else; StateMachineMatcher is not documented for extension either.
# Kept matches, with the sites routing.GatewayMap keeps, are worth more than the 5% a
# speed-up needs (bench/bench_cache.py).


class KeptMatches(StateMachineMatcher):
    """werkzeug's matcher, keeping up to ``kept`` successful (domain, path, method,
    websocket) -> (rule, values) in an LRU cache until the rules change. A miss (404,
    405, a redirect) raises, which functools.lru_cache never keeps, so it is worked out
    every time; nor is the match of a path longer than ``longest_kept_path`` kept, as a
    kept match holds its path."""

    def __init__(self, merge_slashes, kept, longest_kept_path):
        super().__init__(merge_slashes)
        self.kept = functools.lru_cache(maxsize=kept)(super().match)
        self.longest_kept_path = longest_kept_path

    def add(self, rule):
        super().add(rule)
        self.kept.cache_clear()

    def update(self):
        super().update()
        self.kept.cache_clear()

    def match(self, domain, path, method, websocket):
        if len(path) > self.longest_kept_path:
            rule, values = super().match(domain, path, method, websocket)
        else:
            rule, values = self.kept(domain, path, method, websocket)
        # a copy: the request keeps it as view_args, which url_value_preprocessors may change
        return rule, dict(values)


def keep_matches(url_map, kept, longest_kept_path):
    """Make werkzeug ``url_map`` (before any rule is added) match through KeptMatches."""
    url_map._matcher = KeptMatches(url_map._matcher.merge_slashes, kept, longest_kept_path)
    return url_map._matcher
