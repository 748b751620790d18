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


# --- werkzeug: Map._matcher, StateMachineMatcher ---------------------------------------------

def routing_rules():
    from werkzeug.routing import Rule
    return [Rule("/items/<int:item_id>", endpoint="item", methods=["GET", "DELETE"]),
            Rule("/items/featured", endpoint="featured"),
            Rule("/folder/", endpoint="folder"),
            Rule("/files/<path:name>", endpoint="file"),
            Rule("/live", endpoint="live", websocket=True),
            Rule("/v<int(min=1):version>/calls", endpoint="calls", methods=["POST"])]


def answers(adapter, path, method, websocket=False):
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect
    try:
        return adapter.match(path, method, websocket=websocket)
    except RequestRedirect as redirect:
        return ("redirect", redirect.new_url)
    except HTTPException as refused:
        return (type(refused).__name__, sorted(getattr(refused, "valid_methods", None) or ()))


def test_a_map_matches_through_kept_matches_as_through_its_own_matcher():
    """keep_matches puts KeptMatches in werkzeug's private Map._matcher: the map's
    adapters match through it, and it answers what werkzeug's own matcher answers."""
    from werkzeug.routing import Map, Rule

    kept_map, stock = Map(merge_slashes=True), Map(routing_rules(), merge_slashes=True)
    kept = compat.keep_matches(kept_map, 100, 256)
    for rule in routing_rules():
        kept_map.add(rule)
    requests = [("/items/5", "GET"), ("/items/5", "DELETE"), ("/items/5", "POST"),
                ("/items/featured", "GET"), ("/items/five", "GET"), ("/folder", "GET"),
                ("/folder/", "GET"), ("/files/a/b.txt", "GET"), ("/files//a", "GET"),
                ("/v2/calls", "POST"), ("/v0/calls", "POST"), ("/v2/calls", "GET"),
                ("/missing", "GET"), ("/items//5", "GET")]
    for _ in range(2):   # answered, then answered from what was kept
        for path, method in requests:
            assert answers(kept_map.bind("api.test"), path, method) == \
                answers(stock.bind("api.test"), path, method), (path, method)
        for scheme, websocket in (("http", False), ("ws", True)):
            assert answers(kept_map.bind("api.test", url_scheme=scheme), "/live", "GET", websocket) == \
                answers(stock.bind("api.test", url_scheme=scheme), "/live", "GET", websocket)
    assert kept_map._matcher is kept
    assert kept.kept.cache_info().hits > 0              # answered through KeptMatches
    kept_map.add(Rule("/items/7", endpoint="seven"))
    assert kept.kept.cache_info().currsize == 0         # a rule added clears what was kept
    assert kept_map.bind("api.test").match("/items/7") == ("seven", {})
