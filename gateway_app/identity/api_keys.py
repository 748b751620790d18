"""API keys: a high-entropy secret shown once, stored as sha256 with a lookup prefix.

The key reads ``gwk_<prefix>_<secret>``: the prefix (public, unique) finds the row,
the sha256 of the whole key is compared in constant time. A slow hash would add
nothing: 256 random bits cannot be guessed, unlike a password.
"""
import hashlib
import hmac
import re
import secrets

KEY_PATTERN = re.compile(r"^gwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SCOPES = ("read", "write")


class GeneratedKey:
    def __init__(self):
        self.prefix = secrets.token_hex(6)
        self.secret = f"gwk_{self.prefix}_{secrets.token_urlsafe(32)}"
        self.key_hash = hash_key(self.secret)


def hash_key(presented):
    return hashlib.sha256(presented.encode()).hexdigest()


def prefix_of(presented):
    """The lookup prefix of a well-formed key, or None."""
    match = KEY_PATTERN.match(presented or "")
    return match.group(1) if match else None


def key_matches(stored_hash, presented):
    return hmac.compare_digest(stored_hash.encode(), hash_key(presented).encode())


def normalise_scopes(scopes):
    """`write` implies `read`; stored in a fixed order."""
    chosen = set(scopes)
    if "write" in chosen:
        chosen.add("read")
    return [scope for scope in SCOPES if scope in chosen]
