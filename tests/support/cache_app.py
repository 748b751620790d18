"""Test-only routes for the caching stage, and a WSGI entry serving them with the real app.

The routes exist only here: the Flask-client tests register them on their test app, and
the multi-process test and the cache benchmark serve them with real gunicorn as
``gunicorn -c conf/gunicorn.conf.py 'tests.support.cache_app:served_app()'``
(conf/gunicorn.conf.py has already monkey-patched for gevent). Production code never
imports this module.

Every cacheable route answers the company's current name read from the database, so a
test can tell fresh data from stale, and how many times its handler ran in this process.
"""
import itertools

from flask import Blueprint, abort, current_app, g, jsonify, request

from gateway_app import events
from gateway_app.db import Session
from gateway_app.errors import GatewayProblem
from gateway_app.extensions import SERVICES
from gateway_app.models import Company
from gateway_app.pipeline.declarations import gateway_policy

handler_runs = itertools.count(1)
STATIC_BODY = {"calls": [{"id": 1, "status": "ended"}], "next_cursor": None}


def company_name():
    principal = g.gateway.principal
    return Session.get(Company, principal.company_id).name if principal else None


def answer(namespace):
    principal = g.gateway.principal
    return jsonify(namespace=namespace, run=next(handler_runs), name=company_name(),
                   company=principal.company_id if principal else None,
                   user=principal.user_id if principal else None,
                   args=sorted(request.args.items(multi=True)))


def cacheable_view(namespace, per_user):
    service = namespace if namespace in SERVICES else "settings"

    @gateway_policy(cache=namespace, cache_per_user=per_user, service=service, exempt_limits=True)
    def view():
        return answer(namespace)
    view.__name__ = f"{namespace}_{'mine' if per_user else 'shared'}"
    return view


def build_blueprint(namespaces):
    blp = Blueprint("cache_test", __name__, url_prefix="/test/cache")
    for namespace in namespaces:
        for per_user, suffix in ((False, ""), (True, "/mine")):
            view = cacheable_view(namespace, per_user)
            blp.add_url_rule(f"/{namespace}{suffix}", view.__name__, view, methods=["GET"])

    calls = dict(cache="calls", service="calls", exempt_limits=True)

    @blp.get("/calls-static")
    @gateway_policy(**calls)
    def calls_static():
        next(handler_runs)
        return jsonify(STATIC_BODY)

    @blp.get("/calls-missing")
    @gateway_policy(**calls)
    def calls_missing():
        next(handler_runs)
        abort(404)

    @blp.get("/calls-cookie")
    @gateway_policy(**calls)
    def calls_cookie():
        response = answer("calls")
        response.set_cookie("tracking", "secret-of-this-user")
        return response

    @blp.get("/calls-private")
    @gateway_policy(**calls)
    def calls_private():
        response = answer("calls")
        response.headers["Cache-Control"] = "private"
        return response

    @blp.get("/calls-large")
    @gateway_policy(**calls)
    def calls_large():
        next(handler_runs)
        return jsonify(blob="x" * 300_000)

    @blp.get("/calls-flaky")
    @gateway_policy(**calls, upstream="calcom")   # a view that depends on a provider
    def calls_flaky():
        """Falls back as the circuit breaker does while CACHE_TEST_UPSTREAM_DOWN is set."""
        if current_app.config.get("CACHE_TEST_UPSTREAM_DOWN"):
            stage = current_app.extensions["gateway"].pipeline.stage("caching")
            stale = stage.stale_response(g.gateway, request)
            if stale is None:
                raise GatewayProblem(503, "Service Unavailable", "Upstream down, no cached copy.",
                                     service="calls")
            return stale
        return answer("calls")

    @blp.post("/events")
    @gateway_policy(exempt_limits=True)
    def emit_event():
        """A write through the Session: renames the company and emits the named event."""
        body = request.get_json()
        company = Session.get(Company, g.gateway.principal.company_id)
        if "name" in body:
            company.name = body["name"]
        events.emit(Session, body["event"], company.id, user_id=body.get("user_id"))
        if body.get("rollback"):
            Session.rollback()
            return jsonify(name=Session.get(Company, company.id).name)
        Session.commit()
        return jsonify(name=company.name)

    return blp


def register_cache_test_routes(app):
    namespaces = app.extensions["gateway"].policy["caching"]["namespaces"]
    app.register_blueprint(build_blueprint(namespaces))
    return app


def served_app():
    """gunicorn entry: the real app from the environment, plus the test routes."""
    from gateway_app import create_app
    return register_cache_test_routes(create_app())
