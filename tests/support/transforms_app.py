"""Test-only local views for the transforms stage: they echo the request a local service
receives, as tests/support/echo_upstream.py does for a remote one. Registered on a test
app after it is built (production code never imports this module)."""
import json

from flask import Blueprint, current_app, jsonify, request

from gateway_app.pipeline.declarations import gateway_policy

LOCAL_ECHO = "/test/transforms/echo"
LOCAL_TEXT = "/test/transforms/echo/text"
LOCAL_CACHED = "/test/transforms/cached"
LOCAL_STREAMED = "/test/transforms/streamed"
handler_runs = {"cached": 0}


def echoed():
    return {"served_by": "local", "method": request.method, "path": request.path,
            "query": request.query_string.decode("latin-1"), "headers": dict(request.headers),
            "body": request.get_data(as_text=True), "kept": "yes"}


def with_own_headers(response):
    """The headers echo_upstream.py's instance sends too."""
    response.headers["ETag"] = '"local-etag"'
    response.headers["X-Echo-Server"] = "local"
    response.headers["X-Upstream-Old"] = "old-value"
    return response


def build_blueprint():
    blp = Blueprint("transforms_test", __name__, url_prefix="/test/transforms")
    calls = dict(service="calls", exempt_limits=True)

    @blp.route("/echo", methods=["GET", "POST"])
    @gateway_policy(**calls)
    def echo():
        return with_own_headers(jsonify(echoed()))

    @blp.get("/echo/text")
    @gateway_policy(**calls)
    def echo_text():
        text = current_app.response_class(json.dumps(echoed()), mimetype="text/plain")
        return with_own_headers(text)

    @blp.get("/cached")
    @gateway_policy(**calls, cache="calls")
    def cached():
        handler_runs["cached"] += 1
        return jsonify({**echoed(), "run": handler_runs["cached"]})

    @blp.get("/streamed")
    @gateway_policy(**calls)
    def streamed():
        """A JSON object streamed in small chunks, of no declared length: ``pad`` characters of padding."""
        text = json.dumps({"served_by": "local", "kept": "yes", "pad": "x" * int(request.args.get("pad", 0))})
        chunks = (text[i:i + 16] for i in range(0, len(text), 16))
        return current_app.response_class(chunks, mimetype="application/json")

    return blp


def register_transforms_test_routes(app):
    app.register_blueprint(build_blueprint())
    return app
