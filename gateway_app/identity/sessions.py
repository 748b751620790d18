"""Server-side sessions: the cookie carries only a signed random id.

The session record (user, company, credential version, CSRF token) lives in the
credentials store - Redis when configured, so every worker sees it. The store key
is the sha256 of the id, so a copy of the store does not yield usable cookies.
"""
import hashlib
import hmac
import json
import secrets

from itsdangerous import BadSignature, Signer

COOKIE_NAME = "gw_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class SessionInvalid(Exception):
    pass


class SessionManager:
    def __init__(self, store, secret_key, ttl):
        self.store = store
        self.ttl = ttl
        self.signer = Signer(secret_key, salt="gateway-session")

    @staticmethod
    def handle_of(session_id):
        """The non-secret name of a session (store key, Principal.credential_id)."""
        return hashlib.sha256(session_id.encode()).hexdigest()

    def create(self, user):
        """Store a new session; return (cookie value, csrf token)."""
        session_id = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        record = {"user_id": user.id, "company_id": user.company_id,
                  "cv": user.credential_version, "csrf": csrf_token}
        self.store.set("session:" + self.handle_of(session_id), json.dumps(record), self.ttl, kept=True)
        return self.signer.sign(session_id).decode(), csrf_token

    def load(self, cookie_value):
        """(handle, record) of a cookie; SessionInvalid when tampered, expired or unknown.

        StoreUnavailable propagates: the caller answers 503, not 401.
        """
        try:
            session_id = self.signer.unsign(cookie_value).decode()
        except BadSignature:
            raise SessionInvalid("session cookie signature is invalid") from None
        handle = self.handle_of(session_id)
        raw = self.store.get("session:" + handle)
        if raw is None:
            raise SessionInvalid("session expired or logged out")
        return handle, json.loads(raw)

    @staticmethod
    def csrf_ok(record, presented):
        return bool(presented) and hmac.compare_digest(record["csrf"].encode(), presented.encode())

    def destroy(self, handle):
        self.store.delete("session:" + handle, kept=True)
