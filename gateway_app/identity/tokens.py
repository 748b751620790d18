"""Access tokens: short-lived JWTs, HS256 pinned, issuer and audience checked."""
import datetime as dt
import uuid

import jwt

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
