"""The gateway's response class (gateway_app/responses.py): a response with nothing to
fix is sent with its own headers; everything werkzeug fixes on the way out still is."""
import pytest
from flask import Response, jsonify, redirect

from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.responses import GatewayResponse


@pytest.fixture(autouse=True)
def routes(app):
    def route(name, build):
        build.__name__ = f"resp_{name}"
        app.add_url_rule(f"/test-resp/{name}",
                         view_func=gateway_policy(public=True, exempt_limits=True)(build))
    route("json", lambda: jsonify(answer=42))
    route("redirect", lambda: redirect("/test-resp/caf\u00e9"))
    route("no-content", lambda: ("", 204))
    route("streamed", lambda: Response((part for part in (b"a", b"b")), mimetype="text/plain"))

    def without_length():
        response = Response(b"abc", mimetype="text/plain")
        del response.headers["Content-Length"]
        return response
    route("without-length", without_length)


def test_a_plain_response_keeps_its_headers(client):
    response = client.get("/test-resp/json")
    assert response.status_code == 200 and response.get_json() == {"answer": 42}
    assert response.headers["Content-Length"] == str(len(response.data))
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"   # added by the transform stage
    assert len(response.headers.getlist("X-Request-ID")) == 1


def test_a_location_is_still_made_a_uri(client):
    response = client.get("/test-resp/redirect")
    assert response.status_code == 302
    assert response.headers["Location"] == "/test-resp/caf%C3%A9"


def test_no_content_still_drops_content_length(client):
    response = client.get("/test-resp/no-content")
    assert response.status_code == 204
    assert "Content-Length" not in response.headers


def test_a_missing_content_length_is_still_computed(client):
    response = client.get("/test-resp/without-length")
    assert response.data == b"abc"
    assert response.headers["Content-Length"] == "3"


def test_a_streamed_body_is_sent_without_a_length(client):
    response = client.get("/test-resp/streamed")
    assert response.data == b"ab"
    assert "Content-Length" not in response.headers


def test_the_headers_of_a_response_with_nothing_to_fix_are_not_copied():
    response = GatewayResponse(b"{}", mimetype="application/json")
    assert response.get_wsgi_headers({}) is response.headers
    moved = GatewayResponse(b"", status=302, headers={"Location": "/elsewhere"})
    assert moved.get_wsgi_headers({}) is not moved.headers
