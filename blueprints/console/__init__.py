"""The operations console, /gateway/console (docs/console.md).

Server-rendered pages for operators: log in with GATEWAY_ADMIN_TOKEN, then see services,
breakers, traffic, cache, limits, dependencies, the outbox and the development mail
sink, and act on them. Its script and stylesheet are files of this package served
here, so the console needs no other host. Every action is the admin API's own
(gateway_app/services/operations.py), confirmed on a page of its own and audited.

The pipeline knows these routes as public and exempt from the user-facing limits (as
the admin API is exempt): the console's own session, checked here, is their
credential, because the authentication stage knows the admin token only as a bearer
header, which a browser's form cannot send. The login spends refusals through the
rate-limiting stage exactly as that stage does for the admin API (auth.py).
"""
import os
from http import HTTPStatus

from flask import current_app, jsonify, redirect, render_template, request, send_from_directory

from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import GatewayProblem
from gateway_app.pipeline.declarations import gateway_policy
from gateway_app.services import operations

from . import auth
from .state import charts_of, console_state

blp = GatewayBlueprint("console", __name__, url_prefix="/gateway/console", template_folder="templates",
                       description="The operations console (HTML, for administrators)",
                       documented=False)
CONSOLE = dict(public=True, exempt_limits=True)
STATIC = os.path.join(os.path.dirname(__file__), "static")
ASSET_MAX_AGE = 3600
POLL_SECONDS = 5
# self only: the console's own script, styles and state endpoint; nothing inline runs
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@blp.after_request
def no_store(response):
    # a console page holds live state and a CSRF token: never kept by a cache or the back
    # button (its script and stylesheet may be)
    if request.endpoint != "console.asset":
        response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    return response


def page(template, status=200, **context):
    return current_app.response_class(render_template(template, **context), status=status,
                                      mimetype="text/html")


def disabled():
    return page("console/message.html", 404, title="Console disabled",
                message="The operations console is disabled: GATEWAY_ADMIN_TOKEN is unset.")


def login_page(status=200, error=None, headers=None):
    nonce = auth.new_login_nonce()
    response = page("console/login.html", status, error=error, csrf_token=auth.login_form_token(nonce))
    response.set_cookie(auth.LOGIN_COOKIE, nonce, **auth.cookie_options(auth.LOGIN_TTL))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@blp.route("/login", methods=["GET"])
@gateway_policy(**CONSOLE)
def login_form():
    if not auth.admin_token():
        return disabled()
    if auth.current_session():
        return redirect("/gateway/console", 303)
    return login_page()


@blp.route("/login", methods=["POST"])
@gateway_policy(**CONSOLE)
def login():
    """Exchange the admin token for a console session cookie."""
    if not auth.admin_token():
        return disabled()
    if not auth.login_csrf_ok(request.form.get("csrf_token"), request.cookies.get(auth.LOGIN_COOKIE)):
        return login_page(403, "The login form expired or was not this console's; try again.")
    try:
        accepted = auth.check_admin_token(request.form.get("token", ""))
    except GatewayProblem as refusal:   # 429: this address spent its refusals
        return login_page(refusal.code, f"Too many wrong tokens from this address: {refusal.description}",
                          headers=refusal.extra_headers)
    if not accepted:
        return login_page(401, "Wrong token.")
    session = auth.new_session()
    response = redirect("/gateway/console", 303)
    response.set_cookie(auth.COOKIE, auth.session_cookie(session), **auth.cookie_options(auth.SESSION_TTL))
    response.delete_cookie(auth.LOGIN_COOKIE, path=auth.COOKIE_PATH)
    return response


def html_session():
    """The session of a console page, or the response to send instead."""
    if not auth.admin_token():
        return None, disabled()
    session = auth.current_session()
    if session is None:
        return None, redirect("/gateway/console/login", 303)
    return session, None


def checked_post():
    """The session of a console action with its CSRF token checked, or the response instead."""
    session, refusal = html_session()
    if refusal is not None:
        if refusal.status_code == 303:
            return None, page("console/message.html", 401, title="Logged out",
                              message="Your console session ended; log in again.")
        return None, refusal
    if not auth.csrf_ok(session, request.form.get("csrf_token")):
        return None, page("console/message.html", 403, title="Refused",
                          message="The form's CSRF token is missing or wrong; reload the console and retry.")
    return session, None


@blp.route("/logout", methods=["POST"])
@gateway_policy(**CONSOLE)
def logout():
    session, refusal = checked_post()
    if refusal is not None:
        return refusal
    auth.log_out(session)
    response = redirect("/gateway/console/login", 303)
    response.delete_cookie(auth.COOKIE, path=auth.COOKIE_PATH, secure=bool(current_app.config.get(
        "SESSION_COOKIE_SECURE")), httponly=True, samesite="Strict")
    return response


@blp.route("", methods=["GET"])
@gateway_policy(**CONSOLE)
def console():
    session, refusal = html_session()
    if refusal is not None:
        return refusal
    state = console_state()
    return page("console/console.html", state=state, charts=charts_of(state), csrf_token=session["csrf"],
                poll_seconds=POLL_SECONDS, session_seconds=auth.remaining(session))


@blp.route("/panels", methods=["GET"])
@gateway_policy(**CONSOLE)
def panels():
    """The live part of the console page, for its script to swap in every POLL_SECONDS."""
    session = api_session()
    state = console_state()
    return page("console/panels.html", state=state, charts=charts_of(state), csrf_token=session["csrf"])


def api_session():
    if not auth.admin_token():
        raise GatewayProblem(404, "Not Found", "The console is disabled (GATEWAY_ADMIN_TOKEN unset).")
    session = auth.current_session()
    if session is None:
        raise GatewayProblem(401, "Unauthorized", "This needs a console session: log in at /gateway/console/login.")
    return session


@blp.route("/state", methods=["GET"])
@gateway_policy(**CONSOLE)
def state_json():
    """Everything the console shows, as JSON (the same figures as the page)."""
    api_session()
    return jsonify(console_state())


# -- actions: each confirmed on a page of its own, then done by the admin API's function ----
def optional_int(value, name):
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 2 ** 63:
        raise operations.OperationRefused(422, f"{name} must be a positive whole number.")
    return int(value)


def retry_ids(value):
    parts = [part for part in (value or "").replace(",", " ").split() if part]
    return [optional_int(part, "An outbox id") for part in parts] or None


ACTIONS = {
    # name: (fields, what the confirm page says, do it -> what the result page says)
    "breaker": (("service", "state"),
                lambda f: f"Force the {f['service']} breaker {f['state']}?",
                lambda f: "The {service} breaker is now {state}.".format(
                    **operations.force_breaker(f["service"], f["state"], via="console"))),
    "purge": (("namespace", "company_id"),
              lambda f: (f"Purge the cached responses of namespace {f['namespace'] or 'every namespace'}"
                         + (f" for company {f['company_id']}" if f["company_id"] else "") + "?"),
              lambda f: "Purged: {}.".format(", ".join(operations.purge_cache(
                  f["namespace"] or None, None, optional_int(f["company_id"], "The company id"),
                  via="console")["namespaces"]))),
    "rate-limit-reset": (("layer", "key"),
                         lambda f: f"Reset the {f['layer']} layer's counts of {f['key']!r}?",
                         lambda f: "Cleared: {}.".format(", ".join(
                             operations.reset_rate_limit(f["layer"], f["key"], via="console")))),
    "outbox-retry": (("ids",),
                     lambda f: (f"Retry the dead outbox messages {f['ids']}?" if f["ids"]
                                else "Retry every dead outbox message?"),
                     lambda f: "Queued again: {}.".format(", ".join(map(str, operations.retry_dead_messages(
                         retry_ids(f["ids"]), via="console"))) or "nothing was dead")),
}


@blp.route("/actions/<action>", methods=["POST"])
@gateway_policy(**CONSOLE)
def act(action):
    """First post: a confirm page; the confirm page's post (``confirmed=yes``) does it."""
    session, refusal = checked_post()
    if refusal is not None:
        return refusal
    if action not in ACTIONS:
        return page("console/message.html", 404, title="Unknown action", message=f"No console action {action!r}.")
    names, question, perform = ACTIONS[action]
    fields = {name: request.form.get(name, "").strip() for name in names}
    if request.form.get("confirmed") != "yes":
        return page("console/confirm.html", action=action, fields=fields, question=question(fields),
                    csrf_token=session["csrf"])
    try:
        message = perform(fields)
    except operations.OperationRefused as exc:
        return page("console/message.html", exc.status, title=HTTPStatus(exc.status).phrase, message=exc.detail)
    except operations.CacheUnavailable:
        return page("console/message.html", 503, title="Service Unavailable",
                    message="Redis is unreachable; this process will apply the purge when Redis answers again.")
    return page("console/message.html", title="Done", message=message, done=True)


@blp.route("/assets/<name>", methods=["GET"])
@gateway_policy(**CONSOLE)
def asset(name):
    """The console's own script and stylesheet (no other host is ever asked)."""
    return send_from_directory(STATIC, name, max_age=ASSET_MAX_AGE)

