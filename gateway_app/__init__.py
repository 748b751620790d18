"""The API gateway: app factory."""
import functools
import logging

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_smorest import Api

from . import bookings, errors, events, integrations, notifications, outbox
from .breakers import BreakerRegistry
from .db import Session, bind, end_session, make_engine
from .extensions import GatewayState
from .files import build_store
from .identity.services import IdentityServices
from .integrations.email import deliver_email
from .integrations.usage_reporting import METER_EVENT_KIND, deliver_meter_event
from .logs import configure_logging
from . import openapi
from .openapi import SWAGGER_UI_ASSETS_PATH
from .pipeline import Pipeline, build_stages
from .policy import load_policy
from .readiness import check_database, redis_check
from .redis_store import BatchedReads, make_redis, round_trips_for
from .responses import GatewayResponse
from .routing import GatewayMap
from .services import recordings
from .settings import from_environment

log = logging.getLogger("gateway")

API_DOC = {
    "API_TITLE": "Voice Agent API Gateway",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": SWAGGER_UI_ASSETS_PATH,
}


class NoFlaskSession(SecureCookieSessionInterface):
    """The gateway keeps its own sessions (identity/sessions.py) and never uses Flask's
    signed-cookie session, whose opening builds a signing serializer on every request."""

    def open_session(self, app, request):
        return self.make_null_session(app)


class GatewayFlask(Flask):
    """Responses are GatewayResponse (responses.py); URLs are bound and matched by
    GatewayMap (routing.py)."""

    response_class = GatewayResponse
    url_map_class = GatewayMap

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Flask asks inspect, for every view and hook of every request, whether it is a
        # coroutine function; a function's answer cannot change, so it is kept
        self.sync_functions = functools.lru_cache(maxsize=1024)(super().ensure_sync)

    def ensure_sync(self, func):
        return self.sync_functions(func)

    def create_url_adapter(self, request):
        if request is None or not self.binds_by_map_alone():
            return super().create_url_adapter(request)
        # Flask's binding for this configuration, without its early read of the Host
        # header, which only checks TRUSTED_HOSTS (request.host is still read when used)
        return self.url_map.bind_to_environ(request.environ, server_name=self.config["SERVER_NAME"],
                                            subdomain=self.url_map.default_subdomain or "")

    def binds_by_map_alone(self):
        """No trusted-hosts check, no host or subdomain matching: the gateway's configuration."""
        return (self.config["TRUSTED_HOSTS"] is None and not self.url_map.host_matching
                and not self.subdomain_matching)


def register_readiness_checks(state):
    """/ready: the database and Redis decide readiness; an integration is only reported
    ("ok", "circuit open" or "not configured"), since the gateway serves without it."""
    state.readiness.add("database", check_database)
    state.readiness.add("redis", redis_check(state.redis))
    for service in integrations.CLIENTS:
        state.readiness.add(f"integration:{service}", integrations.readiness_check(service),
                            informational=True)


def register_outbox_handlers():
    """Which function `gateway worker` calls to deliver each kind of outbox message."""
    outbox.register_handler(bookings.BOOKING_KIND, bookings.deliver_booking)
    outbox.register_handler(bookings.CANCELLATION_KIND, bookings.deliver_cancellation)
    outbox.register_handler(notifications.EMAIL_KIND, deliver_email)
    outbox.register_handler(METER_EVENT_KIND, deliver_meter_event)
    outbox.register_handler(recordings.RECORDING_KIND, recordings.deliver_recording)


def create_app(config=None):
    """Build the gateway. ``config`` overrides settings read from the environment."""
    settings = from_environment()
    settings.update(config or {})
    policy = settings.pop("GATEWAY_POLICY", None) or load_policy(settings.get("GATEWAY_CONFIG"))

    app = GatewayFlask(__name__)
    app.session_interface = NoFlaskSession()
    app.config.update(API_DOC)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = policy["transform"]["max_content_length"]
    configure_logging()

    engine = make_engine(app.config["SQLALCHEMY_DATABASE_URL"])
    bind(engine)
    redis_client = make_redis(app.config["REDIS_URL"], app.config["REDIS_SOCKET_TIMEOUT"],
                              app.config["REDIS_POOL_SIZE"], app.config.get("REDIS_RETRY_AFTER", 1.0))
    app.extensions["gateway_engine"] = engine
    state = app.extensions["gateway"] = GatewayState(policy=policy, redis=redis_client)
    if redis_client is not None:
        state.round_trips = round_trips_for(redis_client)
        state.reads = BatchedReads(state.round_trips)
    state.identity = IdentityServices(app, policy["authentication"], redis_client, state.reads)
    events.subscribe(app, state.identity.on_event)
    state.files = build_store(app.config)
    state.breakers = BreakerRegistry(policy["circuit_breaker"], redis_client, services=state.services)

    operations = openapi.OperationsFromPolicy(app)
    api = Api(app, spec_kwargs={
        "info": {"description": "Gateway for the voice-agent SaaS: portal, mobile app, integrations."},
        "extra_plugins": [operations]})
    errors.install(app)  # after Api(), which registers its own JSON error handler
    # The one place below the blueprints that knows them: assembling the app is its job.
    from blueprints import register_all
    register_all(api)
    openapi.install(app, api, operations)
    state.pipeline = Pipeline(app, build_stages(app, policy, state))
    register_readiness_checks(state)
    register_outbox_handlers()

    @app.teardown_appcontext
    def remove_session(_exc):
        if not Session.registry.has():   # most cached and public requests never opened one
            return
        # the database may have gone away after the answer was made: the answer stands
        # (its writes were committed or never acknowledged)
        failed = end_session()
        if failed is not None:
            log.warning("database unreachable while ending a request's session: %s",
                        type(failed).__name__)

    return app
