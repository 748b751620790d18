"""Stage 1: authentication. Resolves one credential into a Principal.

Checked in the contract's order: API key, bearer token, session. A request that
carries a bad credential is rejected with 401, never treated as anonymous (a stale
session cookie on a public route such as /auth/login is the one exception: browsers
send cookies unasked). Resolved principals are cached (identity/principal_cache.py)
so a warm request costs no database query. A refusal (401, the admin API's included)
spends the client address's ip quotas (``on_refusal``): guessing is rate limited like
any other traffic, and an API key found unknown is remembered for a short while
(``REFUSED_KEY_TTL``) so that guessing it again costs no database query.

Confirming a cached principal (its versions)
is one Redis read; the calls later stages make ahead for that principal (``ahead_of``:
caching's generation tokens, rate limiting's quotas) go in the same round trip.
"""
import contextlib
import hmac

from cachetools import TTLCache

from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..context import Principal, request_header
from ..db import Session
from ..errors import DATABASE_RETRY_AFTER, GatewayProblem
from ..identity.api_keys import hash_key, key_matches, prefix_of
from ..identity.sessions import COOKIE_NAME, SAFE_METHODS, SessionInvalid
from ..identity.store import StoreUnavailable
from ..identity.tokens import TokenError, VerifiedTokens
from ..locks import section_lock
from ..models import ApiKey, Company, User
from ..policy_types import RateString, positive, strict
from .base import Stage


REFUSED_KEYS = 10_000      # API keys refused recently, remembered without a database query
REFUSED_KEY_TTL = 30       # seconds: short, as a key revoked or unknown now stays so


def unauthorized(detail):
    return GatewayProblem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


@strict
class AuthenticationSchema(Schema):
    access_token_ttl = fields.Integer(required=True, validate=positive)
    refresh_token_ttl = fields.Integer(required=True, validate=positive)
    session_ttl = fields.Integer(required=True, validate=positive)
    issuer = fields.String(required=True, validate=validate.Length(min=1))
    audience = fields.String(required=True, validate=validate.Length(min=1))
    principal_cache_ttl = fields.Integer(required=True, validate=validate.Range(min=0, max=3600))
    failed_login_limit = RateString(required=True)
    api_key_last_used_interval = fields.Integer(required=True, validate=positive)
    invite_ttl = fields.Integer(required=True, validate=positive)


class AuthenticationStage(Stage):
    name = "authentication"
    section = "authentication"   # of conf/gateway.yaml; its schema is above

    def __init__(self, app, config, identity, ahead_of=(), on_refusal=None, refusals_left=None):
        self.identity = identity
        self.ahead_of = tuple(ahead_of)   # later stages whose call_ahead this stage makes
        self.on_refusal = on_refusal      # on_refusal(ctx): may raise its own refusal (429)
        # refusals_left(ctx): 429 when the address has no refusals left (admin API)
        self.refusals_left = refusals_left
        self.refused_keys = TTLCache(maxsize=REFUSED_KEYS, ttl=REFUSED_KEY_TTL)
        self.refused_keys_lock = section_lock()   # cachetools' caches are not thread-safe
        self.admin_token = app.config.get("GATEWAY_ADMIN_TOKEN")
        self.verified_tokens = VerifiedTokens(app.config["SECRET_KEY"], config)

    def before(self, ctx, request):
        try:
            self.authenticate(ctx, request)
        except GatewayProblem as refusal:
            if refusal.code == 401 and self.on_refusal is not None:
                self.on_refusal(ctx)
            raise
        return None

    def authenticate(self, ctx, request):
        if ctx.route_policy.get("admin"):
            if self.refusals_left is not None:
                self.refusals_left(ctx)
            self.check_admin_token(request)
            return
        public = bool(ctx.route_policy.get("public"))
        try:
            ctx.principal = self.resolve(ctx, request, public)
        except SQLAlchemyError:
            Session.rollback()
            raise GatewayProblem(503, "Service Unavailable",
                                 "Credentials cannot be checked: the database is unreachable.",
                                 problem_type="database-unavailable",
                                 headers={"Retry-After": str(DATABASE_RETRY_AFTER)}) from None
        if ctx.principal is None and not public and request.endpoint:
            raise unauthorized("This endpoint needs an API key, a bearer token or a session.")

    def check_admin_token(self, request):
        expected = self.admin_token
        if not expected:
            raise GatewayProblem(404, "Not Found", "The admin API is disabled (GATEWAY_ADMIN_TOKEN unset).")
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.strip().encode(), expected.encode()):
            raise unauthorized("The admin API needs 'Authorization: Bearer <GATEWAY_ADMIN_TOKEN>'.")

    def resolve(self, ctx, request, public):
        environ = request.environ
        api_key = request_header(environ, "X-API-Key")
        if api_key is not None:
            return self.principal_from_api_key(ctx, request, api_key.strip())
        authorization = request_header(environ, "Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("Authorization must be 'Bearer <access_token>'.")
            return self.principal_from_token(ctx, request, token.strip())
        if "HTTP_COOKIE" not in environ:   # parsing cookies is the costly part
            return None
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            return self.principal_from_session(ctx, request, cookie, public)
        return None

    # -- API keys --------------------------------------------------------------------------
    def principal_from_api_key(self, ctx, request, presented):
        prefix = prefix_of(presented)
        if prefix is None:
            raise unauthorized("The API key is malformed.")
        digest = hash_key(presented)
        with self.refused_keys_lock:
            refused = digest in self.refused_keys
        if refused:
            raise unauthorized("The API key is invalid or revoked.")
        principal = self.cached_principal(ctx, request, "key:" + digest)
        if principal is None:
            try:
                principal = self.load_api_key(prefix, presented)
            except GatewayProblem:
                with self.refused_keys_lock:
                    self.refused_keys[digest] = True
                raise
        self.identity.note_key_used(principal.api_key_id)
        return principal

    def load_api_key(self, prefix, presented):
        company_id = Session.scalar(select(ApiKey.company_id).where(ApiKey.prefix == prefix))
        if company_id is None:
            raise unauthorized("The API key is invalid or revoked.")
        # versions first: a tier change or revocation committed after this point is noticed
        versions = self.identity.principals.current_versions(company_id, None)
        found = Session.execute(select(ApiKey, Company.tier, Company.timezone)
                                .join(Company, Company.id == ApiKey.company_id)
                                .where(ApiKey.prefix == prefix)).first()
        if found is None or found[0].revoked_at is not None or not key_matches(found[0].key_hash, presented):
            raise unauthorized("The API key is invalid or revoked.")
        key, tier, timezone = found
        principal = Principal(kind="api_key", company_id=key.company_id, tier=tier,
                              api_key_id=key.id, scopes=tuple(key.scopes), credential_id=prefix,
                              timezone=timezone)
        self.identity.principals.put("key:" + hash_key(presented), principal, versions)
        return principal

    # -- bearer tokens ---------------------------------------------------------------------
    def principal_from_token(self, ctx, request, token):
        try:
            claims = self.verified_tokens.claims(token)
        except TokenError:
            raise unauthorized("The access token is invalid or expired.") from None
        cache_key = "token:" + claims["jti"]
        principal = self.cached_principal(ctx, request, cache_key)
        if principal is not None:
            return principal
        user_id, company_id = int(claims["sub"]), claims.get("cid")
        versions = self.identity.principals.current_versions(company_id, user_id)
        if self.identity.access_token_revoked(claims["jti"]):
            raise unauthorized("The access token has been revoked.")
        user = self.active_user(user_id, company_id, claims.get("cv"))
        if user is None:
            raise unauthorized("The access token is no longer valid.")
        principal = self.user_principal("token", user, claims["jti"])
        self.identity.principals.put(cache_key, principal, versions)
        return principal

    # -- sessions --------------------------------------------------------------------------
    def principal_from_session(self, ctx, request, cookie, public):
        sessions = self.identity.sessions
        try:
            handle, record = sessions.load(cookie)
        except SessionInvalid as exc:
            if public:
                return None
            raise unauthorized(f"The session is invalid: {exc}.") from None
        except StoreUnavailable:
            if public:
                return None
            raise GatewayProblem(503, "Service Unavailable",
                                 "Sessions cannot be checked: the session store is unreachable.")
        if request.method not in SAFE_METHODS and not public and not sessions.csrf_ok(
                record, request.headers.get("X-CSRF-Token")):
            raise GatewayProblem(403, "Forbidden",
                                 "State-changing session requests need the X-CSRF-Token header "
                                 "returned by login.", problem_type="csrf-failed")
        cache_key = "session:" + handle
        principal = self.cached_principal(ctx, request, cache_key)
        if principal is not None:
            return principal
        versions = self.identity.principals.current_versions(record["company_id"], record["user_id"])
        user = self.active_user(record["user_id"], record["company_id"], record["cv"])
        if user is None:
            with contextlib.suppress(StoreUnavailable):  # it expires by itself otherwise
                sessions.destroy(handle)
            raise unauthorized("The session is no longer valid.")
        principal = self.user_principal("session", user, handle)
        self.identity.principals.put(cache_key, principal, versions)
        return principal

    # -- shared ----------------------------------------------------------------------------
    def cached_principal(self, ctx, request, cache_key):
        """The principal cached under ``cache_key`` if still current, else None. The
        calls ``ahead_of`` stages make for it are made with the confirming read; their
        answers land in ``ctx.ahead`` whether the principal is confirmed or not (each
        stage checks the item it was for)."""
        asked = []   # (stage name, item)

        def ahead(candidate):
            calls = []
            for stage in self.ahead_of:
                call = stage.call_ahead(ctx, request, candidate)
                if call is not None:
                    asked.append((stage.name, call[1]))
                    calls.append(call)
            return calls

        principal, answers = self.identity.principals.get(cache_key, ahead)
        if asked:
            ctx.ahead = {name: (item, answer) for (name, item), answer in zip(asked, answers)}
        return principal

    @staticmethod
    def active_user(user_id, company_id, credential_version):
        """The user a credential names, if it is still active at the version it was issued."""
        user = Session.get(User, user_id)
        if (user is None or user.status != "active" or user.company_id != company_id
                or user.credential_version != credential_version):
            return None
        return user

    @staticmethod
    def user_principal(kind, user, credential_id):
        company = user.company
        return Principal(kind=kind, company_id=user.company_id, tier=company.tier,
                         user_id=user.id, role=user.role, credential_id=credential_id,
                         timezone=company.timezone)
