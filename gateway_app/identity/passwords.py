"""Password hashing with argon2.

Production uses argon2-cffi's defaults, the RFC 9106 low-memory profile (64 MiB, t=3, p=4).
An app may name other parameters in ``app.config["PASSWORD_HASH_PARAMETERS"]`` (an
``argon2.Parameters``; unset or None means the production profile): the test suite uses
``argon2.profiles.CHEAPEST``. Every hash records its own parameters, so a hash verifies
whichever profile made it.
"""
import dataclasses

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context

PRODUCTION_PARAMETERS = profiles.RFC_9106_LOW_MEMORY

_hashers = {}   # astuple(parameters) -> (hasher, dummy hash made with the same parameters)


def _hasher_for(parameters):
    key = dataclasses.astuple(parameters)
    if key not in _hashers:
        hasher = PasswordHasher.from_parameters(parameters)
        # Verified against when the email is unknown, so both failures cost the same time.
        _hashers[key] = hasher, hasher.hash("not-a-real-password")
    return _hashers[key]


_hasher_for(PRODUCTION_PARAMETERS)   # made at import, as before, not on the first login


def hash_parameters():
    """The argon2 parameters new hashes get: the current app's, else production's."""
    configured = current_app.config.get("PASSWORD_HASH_PARAMETERS") if has_app_context() else None
    return configured or PRODUCTION_PARAMETERS


def hash_password(password):
    hasher, _dummy = _hasher_for(hash_parameters())
    return hasher.hash(password)


def verify_password(password_hash, password):
    """Constant-work check: an unknown user (hash None) costs one argon2 verify too."""
    hasher, dummy = _hasher_for(hash_parameters())
    try:
        return hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
