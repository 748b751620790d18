"""The console's login: the admin token once, then a signed, short-lived session cookie.

The cookie holds a session id, a CSRF token, its issue time and a fingerprint of the
admin token, signed with SECRET_KEY (itsdangerous): changing SECRET_KEY or
GATEWAY_ADMIN_TOKEN ends every console session, and nothing is stored server-side
except the ids of sessions logged out before they expired (Redis when configured, so
every worker and instance refuses them; this process otherwise).

A wrong token spends the client address's admin refusals exactly as a refused
admin-API bearer does: the login calls the rate-limiting stage's own
``refuse_when_refusals_exhausted`` and ``spend_on_refusal``, the two methods the
authentication stage calls for the admin API (pipeline/__init__.py), so guessing through
the form or through the API drains one budget.
"""
import hashlib
import hmac
import logging
import secrets
import threading
import time

from flask import current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer
from redis.exceptions import RedisError

from gateway_app.extensions import gateway_state

log = logging.getLogger("gateway.console")

COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"   # the login form's CSRF nonce, before there is a session
COOKIE_PATH = "/gateway/console"
SESSION_TTL = 30 * 60   # seconds: short, as the cookie stands for the admin token itself
LOGIN_TTL = 10 * 60     # seconds a login form stays usable
clock = time.time       # tests move it to expire sessions without waiting

_logged_out = {}        # session id -> expiry, this process's record (always kept)
_logged_out_lock = threading.Lock()


def serializer(salt):
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def admin_token():
    return current_app.config.get("GATEWAY_ADMIN_TOKEN") or None


def token_fingerprint(token):
    return hashlib.sha256(b"gateway-console:" + token.encode()).hexdigest()[:32]


def cookie_options(max_age):
    return dict(max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="Strict",
                secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))


# -- the login form ----------------------------------------------------------------------
def new_login_nonce():
    return secrets.token_urlsafe(24)


def login_form_token(nonce):
    return serializer("console-login").dumps({"n": nonce, "iat": clock()})


def login_csrf_ok(form_token, cookie_nonce):
    if not form_token or not cookie_nonce:
        return False
    try:
        data = serializer("console-login").loads(form_token)
    except BadSignature:
        return False
    fresh = 0 <= clock() - data.get("iat", 0) < LOGIN_TTL
    return fresh and hmac.compare_digest(str(data.get("n", "")), cookie_nonce)


def token_matches(presented):
    expected = admin_token()
    return bool(expected) and hmac.compare_digest(presented.strip().encode(), expected.encode())


def rate_limiting():
    return gateway_state().pipeline.stage("rate_limiting")


def check_admin_token(presented):
    """True for the right token. Raises the stage's 429 (GatewayProblem) when the address
    has no refusals left, checked before the token so that a right guess cannot tell
    itself from the wrong ones; a wrong token spends the address's admin refusals, the
    budget the admin API's wrong tokens spend too."""
    ctx = g.gateway
    rate_limiting().refuse_when_refusals_exhausted(ctx, admin_token=True)
    if token_matches(presented):
        return True
    rate_limiting().spend_on_refusal(ctx, admin_token=True)
    return False


# -- the session --------------------------------------------------------------------------
def new_session():
    return {"sid": secrets.token_urlsafe(16), "csrf": secrets.token_urlsafe(24), "iat": clock(),
            "tok": token_fingerprint(admin_token())}


def session_cookie(session):
    return serializer("console-session").dumps(session)


def current_session():
    """The request's console session, or None (absent, forged, expired, logged out, or
    made for another admin token)."""
    raw = request.cookies.get(COOKIE)
    token = admin_token()
    if not raw or not token:
        return None
    try:
        session = serializer("console-session").loads(raw)
    except BadSignature:
        return None
    if not isinstance(session, dict) or not 0 <= clock() - session.get("iat", -SESSION_TTL) < SESSION_TTL:
        return None
    if not hmac.compare_digest(str(session.get("tok", "")), token_fingerprint(token)):
        return None
    if logged_out(session["sid"]):
        return None
    return session


def csrf_ok(session, presented):
    return bool(presented) and hmac.compare_digest(presented.encode(), session["csrf"].encode())


def remaining(session):
    return max(1, int(session["iat"] + SESSION_TTL - clock()))


def log_out(session):
    ttl = remaining(session)
    with _logged_out_lock:
        now = clock()
        for sid in [sid for sid, until in _logged_out.items() if until <= now]:
            del _logged_out[sid]
        _logged_out[session["sid"]] = now + ttl
    client = gateway_state().redis
    if client is not None:
        try:
            client.set(f"gateway:console:logged-out:{session['sid']}", b"1", ex=ttl)
        except RedisError as exc:
            log.warning("console logout not shared (Redis unreachable: %s); this process refuses "
                        "the session, others until it expires", type(exc).__name__)


def logged_out(sid):
    with _logged_out_lock:
        if _logged_out.get(sid, 0) > clock():
            return True
    client = gateway_state().redis
    if client is None:
        return False
    try:
        return bool(client.exists(f"gateway:console:logged-out:{sid}"))
    except RedisError:
        # the console is most needed during an outage: a signed, unexpired session stays
        # usable while Redis cannot tell, as with the per-process record above
        return False
