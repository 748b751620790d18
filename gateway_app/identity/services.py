"""The identity components one app shares: credentials store, principal cache, sessions,
login throttle, access-token denylist and API-key usage recording.

Built by create_app and shared as ``gateway_state().identity`` by the authentication
stage and the auth, team, settings and admin blueprints, which call the
``changed_*``/``revoke_*`` methods after committing.
"""
import logging
import time

from sqlalchemy import update

from ..db import utcnow
from ..locks import section_lock
from ..models import ApiKey
from .login_throttle import LoginThrottle
from .principal_cache import LocalEntries, PrincipalCache
from .sessions import SessionManager
from .store import MemoryStore, StoreUnavailable, make_store

log = logging.getLogger("gateway.identity")


class IdentityServices:
    def __init__(self, app, config, redis_client, reads):
        self.config = config
        self.store = make_store(redis_client, reads)
        shared = not isinstance(self.store, MemoryStore)
        ttl = config["principal_cache_ttl"]
        self.principals = PrincipalCache(self.store, ttl, LocalEntries(ttl) if shared else None)
        self.sessions = SessionManager(self.store, app.config["SECRET_KEY"], config["session_ttl"])
        self.throttle = LoginThrottle(config["failed_login_limit"], redis_client)
        self.engine = app.extensions["gateway_engine"]
        self.key_used_interval = config["api_key_last_used_interval"]
        self._key_used_locally = {}
        self._key_used_lock = section_lock()   # guards a dict look-up and write, nothing that blocks

    # -- changes that cached principals must notice (call after commit) --------------------
    def company_changed(self, company_id):
        self.principals.bump_company(company_id)

    def on_event(self, event):
        """Domain events (events.subscribe): a tier change, whoever made it (the admin API,
        a Stripe subscription), applies from the next request in every worker."""
        if event.name == "company.tier_changed":
            self.company_changed(event.company_id)

    def user_changed(self, company_id, user_id):
        self.principals.bump_user(company_id, user_id)

    # -- access tokens -------------------------------------------------------------------
    def revoke_access_token(self, jti):
        """Deny a jti for the longest time a token can live; StoreUnavailable when the
        denylist cannot be written (the caller must not report the token revoked)."""
        self.store.set("revoked:" + jti, "1", self.config["access_token_ttl"], kept=True)

    def access_token_revoked(self, jti):
        try:
            return self.store.get("revoked:" + jti) is not None
        except StoreUnavailable:
            # Degrade rather than reject every bearer request while Redis is away.
            log.warning("access token denylist unreachable; revocation not checked")
            return False

    # -- API key usage -------------------------------------------------------------------
    def note_key_used(self, api_key_id):
        """Record last_used_at at most once per interval per key, across workers."""
        now = time.monotonic()
        with self._key_used_lock:
            last = self._key_used_locally.get(api_key_id)
            if last is not None and now - last < self.key_used_interval:
                return
            self._key_used_locally[api_key_id] = now
        try:
            if not self.store.set(f"keyused:{api_key_id}", "1", self.key_used_interval,
                                  only_if_absent=True):
                return  # another worker wrote it within the interval
        except StoreUnavailable:
            pass  # the per-process gate above still bounds the writes
        try:
            with self.engine.begin() as connection:
                connection.execute(update(ApiKey).where(ApiKey.id == api_key_id)
                                   .values(last_used_at=utcnow()))
        except Exception as exc:  # bookkeeping must never fail the request
            log.warning("could not record API key use: %s", type(exc).__name__)
