"""routing.py: URL matches kept per path and method, through HTTP, and the map's rules."""
import pytest
from flask import Blueprint, Flask, jsonify, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule

from gateway_app.db import Session
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.compat import KeptMatches
from gateway_app.routing import GatewayMap
from tests.conftest import build_app


def register_routing_test_routes(app):
    blp = Blueprint("routing_test", __name__, url_prefix="/test/routing")

    @blp.url_value_preprocessor
    def take_locale(_endpoint, values):
        # Flask's own pattern for a URL part every view of a blueprint shares
        request.environ["test.locale"] = values.pop("locale", None)

    @blp.get("/<locale>/items/<int:item_id>")
    @gateway_policy(public=True, exempt_limits=True)
    def item(item_id):
        return jsonify(item=item_id, locale=request.environ["test.locale"])

    @blp.get("/folder/")
    @gateway_policy(public=True, exempt_limits=True)
    def folder():
        return jsonify(folder=True)

    app.register_blueprint(blp)
    return app


@pytest.fixture
def client(database_url):
    app = register_routing_test_routes(build_app(database_url))
    with app.app_context():
        yield app.test_client()
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def kept_matches(client):
    """The kept matches' functools.lru_cache statistics."""
    return client.application.url_map.kept_matches.kept.cache_info()


def test_the_app_matches_urls_through_kept_matches(client):
    assert isinstance(client.application.url_map, GatewayMap)
    assert isinstance(client.application.url_map.kept_matches, KeptMatches)


def test_each_request_gets_its_own_values_from_a_kept_match(client):
    for _ in range(3):   # a preprocessor that pops from view_args must not empty the kept match
        assert client.get("/test/routing/fr/items/7").get_json() == {"item": 7, "locale": "fr"}
        assert client.get("/test/routing/de/items/8").get_json() == {"item": 8, "locale": "de"}
    before = kept_matches(client)
    assert client.get("/test/routing/fr/items/7").get_json() == {"item": 7, "locale": "fr"}
    after = kept_matches(client)
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)   # the kept match


def test_misses_are_answered_every_time_and_never_kept(client):
    assert client.get("/test/routing/fr/items/7").status_code == 200   # GET kept
    before = kept_matches(client).currsize
    for _ in range(2):
        refused = client.delete("/test/routing/fr/items/7")
        assert refused.status_code == 405
        assert "GET" in refused.headers["Allow"]
        missing = client.get("/test/routing/fr/items/seven")     # the int converter refuses
        assert missing.status_code == 404
        assert missing.mimetype == "application/problem+json"
        redirected = client.get("/test/routing/folder")          # strict slashes
        assert redirected.status_code == 308
        assert redirected.headers["Location"].endswith("/test/routing/folder/")
    assert kept_matches(client).currsize == before


def test_a_path_longer_than_the_apis_own_is_matched_but_not_kept(client):
    locale = "x" * 300
    before = kept_matches(client)
    for _ in range(2):
        answer = client.get(f"/test/routing/{locale}/items/7")
        assert answer.get_json() == {"item": 7, "locale": locale}
    assert kept_matches(client) == before     # neither looked up nor kept


def test_a_rule_added_after_a_match_is_seen():
    url_map = GatewayMap([Rule("/items/<int:item_id>", endpoint="item")])
    adapter = url_map.bind("gateway.test")
    assert adapter.match("/items/5") == ("item", {"item_id": 5})
    url_map.add(Rule("/items/5", endpoint="featured"))   # a static part outranks a converter
    assert url_map.bind("gateway.test").match("/items/5") == ("featured", {})


def test_rules_given_to_the_map_are_matched():
    url_map = GatewayMap([Rule("/a", endpoint="a")], strict_slashes=False)
    adapter = url_map.bind("gateway.test")
    assert adapter.match("/a") == ("a", {})
    assert adapter.match("/a/") == ("a", {})
    with pytest.raises(NotFound):
        adapter.match("/b")


def test_distinct_paths_never_grow_the_kept_matches_past_their_bound():
    url_map = GatewayMap([Rule("/items/<int:item_id>", endpoint="item")], kept_matches=10)
    adapter = url_map.bind("gateway.test")
    for item_id in range(25):
        assert adapter.match(f"/items/{item_id}") == ("item", {"item_id": item_id})
        assert url_map.kept_matches.kept.cache_info().currsize <= 10


@pytest.mark.parametrize("base_url", ["http://a.example", "https://b.example:8443"])
def test_a_redirect_names_each_requests_own_site_and_query(client, base_url):
    for query in ("", "?page=2", "?page=3"):
        redirected = client.get("/test/routing/folder" + query, base_url=base_url)
        assert redirected.status_code == 308
        assert redirected.headers["Location"] == f"{base_url}/test/routing/folder/{query}"


ENVIRONS = {
    "host header": {"HTTP_HOST": "API.Example.com", "PATH_INFO": "/items/5", "QUERY_STRING": "a=1"},
    "server address only": {"SERVER_NAME": "10.0.0.7", "SERVER_PORT": "8080", "PATH_INFO": "/items/5"},
    "standard port dropped": {"HTTP_HOST": "api.example.com:443", "wsgi.url_scheme": "https"},
    "international name": {"HTTP_HOST": "bücher.example", "PATH_INFO": "/items/6"},
    "invalid host": {"HTTP_HOST": "bad host!", "PATH_INFO": "/items/5"},
    "other upgrade": {"HTTP_HOST": "api.example.com", "HTTP_CONNECTION": "keep-alive, Upgrade",
                      "HTTP_UPGRADE": "h2c", "PATH_INFO": "/items/5"},
    "websocket upgrade": {"HTTP_HOST": "api.example.com", "HTTP_CONNECTION": "keep-alive, Upgrade",
                          "HTTP_UPGRADE": "websocket", "PATH_INFO": "/items/5"},
    "mounted": {"HTTP_HOST": "api.example.com", "SCRIPT_NAME": "/gw", "PATH_INFO": "/items/5"},
    "no path": {"HTTP_HOST": "api.example.com"},
    "empty path": {"HTTP_HOST": "api.example.com", "PATH_INFO": ""},
    "latin-1 path": {"HTTP_HOST": "api.example.com", "PATH_INFO": "/caf\xc3\xa9"},
}


def adapter_state(adapter):
    return {name: value for name, value in vars(adapter).items() if name != "map"}


def test_kept_sites_bind_as_werkzeug_binds():
    """One map meets every kind of request in turn, twice: a site is worked out once and
    kept, and no request is bound with another's site, path, query or method."""
    kept = GatewayMap([Rule("/items/<int:item_id>", endpoint="item")])
    stock = Map([Rule("/items/<int:item_id>", endpoint="item")])
    for method in ("GET", "POST"):
        for name, variant in ENVIRONS.items():
            environ = {"REQUEST_METHOD": method, "wsgi.url_scheme": "http",
                       "SERVER_NAME": "localhost", "SERVER_PORT": "80", **variant}
            got = kept.bind_to_environ(dict(environ), subdomain="")
            expected = stock.bind_to_environ(dict(environ), subdomain="")
            assert adapter_state(got) == adapter_state(expected), name
    # three variants share a site with another
    assert kept.site_of.cache_info().currsize == len(ENVIRONS) - 3


@pytest.mark.parametrize("base_url", ["http://a.example", "https://b.example:8443", "http://[::1]:8080"])
def test_the_app_binds_each_request_as_flask_does(client, base_url):
    app = client.application
    with app.test_request_context("/test/routing/fr/items/7?x=1", base_url=base_url) as context:
        assert context.request.host == base_url.split("://")[1]   # still read when used
        assert adapter_state(context.url_adapter) == \
            adapter_state(Flask.create_url_adapter(app, context.request))


def test_with_trusted_hosts_another_host_is_still_refused(database_url):
    app = register_routing_test_routes(build_app(database_url, TRUSTED_HOSTS=["api.example"]))
    try:
        with app.app_context():
            client = app.test_client()
            assert client.get("/test/routing/fr/items/7", base_url="http://api.example").status_code == 200
            refused = client.get("/test/routing/fr/items/7", base_url="http://evil.example")
            assert refused.status_code == 400
            assert refused.mimetype == "application/problem+json"
    finally:
        Session.remove()
        app.extensions["gateway_engine"].dispose()


def test_a_host_that_cannot_be_encoded_is_refused_every_time_and_never_kept(client):
    sites = client.application.url_map.site_of
    before = sites.cache_info().currsize
    for _ in range(2):
        refused = client.get("/test/routing/fr/items/7",
                             environ_overrides={"HTTP_HOST": "x" * 64 + ".example"})
        assert refused.status_code == 400
        assert refused.mimetype == "application/problem+json"
    assert sites.cache_info().currsize == before


def test_a_too_large_id_is_404_also_where_the_path_has_rules_for_other_methods(client, tenant):
    # /team/members/<id> has a PATCH rule and a DELETE rule: the bound is in the regex,
    # so neither rule's methods make a too-large id's DELETE a 405
    too_large = 2 ** 63
    for method in ("delete", "patch"):
        assert getattr(tenant, method)(f"/api/v1/team/members/{too_large}").status_code == 404
    assert tenant.delete(f"/api/v1/team/members/{too_large - 1}").status_code == 404


def test_the_row_id_pattern_matches_exactly_the_numbers_up_to_its_bound():
    import re

    from gateway_app.routing import MAX_ROW_ID, digits_up_to
    for bound in (0, 1, 9, 10, 19, 305, 1000):
        pattern = re.compile(digits_up_to(bound) + r"\Z")
        assert [n for n in range(2000) if bool(pattern.match(str(n))) != (n <= bound)] == []
    pattern = re.compile(digits_up_to(MAX_ROW_ID) + r"\Z")
    assert pattern.match(str(MAX_ROW_ID)) and not pattern.match(str(MAX_ROW_ID + 1))
    assert not pattern.match("9" * 19) and pattern.match("8" * 19)
