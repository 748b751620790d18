"""Access tokens: short-lived JWTs, HS256 pinned, issuer and audience checked."""
import datetime as dt
import time
import uuid

import jwt
from cachetools import LRUCache

from ..locks import section_lock

ALGORITHM = "HS256"


class TokenError(Exception):
    pass


def issue_access_token(secret, auth_config, user, now=None):
    now = now or dt.datetime.now(dt.timezone.utc)
    claims = {
        "sub": str(user.id),
        "cid": user.company_id,
        "cv": user.credential_version,
        "iss": auth_config["issuer"],
        "aud": auth_config["audience"],
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(seconds=auth_config["access_token_ttl"]),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(secret, auth_config, token):
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM],
                          issuer=auth_config["issuer"], audience=auth_config["audience"],
                          options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None


class VerifiedTokens:
    """Claims of the tokens this process has already verified, until each one expires.

    A token presented again is not decoded and its signature not checked again: its
    claims cannot have changed, and it stays valid exactly until its ``exp`` (checked
    here with the same clock PyJWT uses, without leeway). Revocation is unaffected: the
    denylist and the principal versions are checked after this, on every request.
    Bounded: the least recently used token is dropped first.
    """

    def __init__(self, secret, auth_config, max_entries=10000, clock=time.time):
        self.secret = secret
        self.auth_config = auth_config
        self.clock = clock
        self.entries = LRUCache(maxsize=max_entries)   # token -> claims
        self.lock = section_lock()   # cachetools' caches are not thread-safe

    def claims(self, token):
        """The verified claims of ``token``; TokenError when it is invalid or expired."""
        with self.lock:
            claims = self.entries.get(token)
        if claims is not None and int(claims["exp"]) > self.clock():
            return claims
        claims = decode_access_token(self.secret, self.auth_config, token)
        with self.lock:
            self.entries[token] = claims
        return claims
