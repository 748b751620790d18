"""Each provider's own webhook signature scheme, checked over the raw request body.

Every ``verify_*`` function either returns quietly or raises ``SignatureError`` naming
what was wrong; none of them parses the body, because a signature covers the exact
bytes sent and re-serialised JSON would not match. ``now`` is in seconds (float).
"""
import base64
import binascii
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

RETELL_HEADER = "x-retell-signature"
CALCOM_HEADER = "X-Cal-Signature-256"
STRIPE_HEADER = "Stripe-Signature"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_RETELL_PATTERN = re.compile(r"^v=(\d+),d=([0-9a-fA-F]+)$")


class SignatureError(Exception):
    """The request is not provably from the provider (bad, missing or stale signature)."""


def hmac_sha256_hex(secret, message):
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _same(expected_hex, presented_hex):
    return hmac.compare_digest(expected_hex.lower(), presented_hex.strip().lower())


def check_freshness(timestamp, now, tolerance):
    """Replay protection: the signed timestamp must lie within ``tolerance`` of our clock."""
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"the signature timestamp is more than {tolerance} s from the "
                             "gateway's clock")


# --- Retell: x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(api key, body + v)>

def retell_digest(api_key, body, version):
    return hmac_sha256_hex(api_key, body + str(version).encode())


def verify_retell(api_key, body, header, now, tolerance):
    if not header:
        raise SignatureError(f"the {RETELL_HEADER} header is missing")
    match = _RETELL_PATTERN.match(header.strip())
    if not match:
        raise SignatureError(f"the {RETELL_HEADER} header is not 'v=<ms>,d=<hex>'")
    version, digest = match.groups()
    check_freshness(int(version) / 1000.0, now, tolerance)
    if not _same(retell_digest(api_key, body, version), digest):
        raise SignatureError("the Retell signature does not match the body")


# --- Cal.com: X-Cal-Signature-256: <hex HMAC-SHA256(secret, body)>, no timestamp

def calcom_digest(secret, body):
    return hmac_sha256_hex(secret, body)


def verify_calcom(secret, body, header):
    if not header:
        raise SignatureError(f"the {CALCOM_HEADER} header is missing")
    if not _same(calcom_digest(secret, body), header):
        raise SignatureError("the Cal.com signature does not match the body")


# --- Stripe: Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256(whsec, "t." + body)>[,v1=...]

def stripe_digest(secret, body, timestamp):
    return hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)


def parse_stripe_header(header):
    """``(timestamp, [v1 signatures])``; several v1 appear while a secret is being rolled."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def verify_stripe(secret, body, header, now, tolerance):
    if not header:
        raise SignatureError(f"the {STRIPE_HEADER} header is missing")
    timestamp, signatures = parse_stripe_header(header)
    if timestamp is None or not signatures:
        raise SignatureError(f"the {STRIPE_HEADER} header needs t= and at least one v1=")
    check_freshness(timestamp, now, tolerance)
    expected = stripe_digest(secret, body, timestamp)
    if not any(_same(expected, candidate) for candidate in signatures):
        raise SignatureError("no Stripe v1 signature matches the body")


# --- SendGrid: ECDSA P-256 / SHA-256 over timestamp + body, base64 DER signature

def load_sendgrid_public_key(text):
    """The key as SendGrid's settings page shows it: base64 DER SubjectPublicKeyInfo (PEM accepted).

    Raises ValueError when it is not an elliptic-curve public key.
    """
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        try:
            der = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError("not base64") from exc
        key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    return key


def verify_sendgrid(public_key, body, signature_header, timestamp_header, now, tolerance):
    if not signature_header or not timestamp_header:
        raise SignatureError(f"the {SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} "
                             "headers are both required")
    if not timestamp_header.strip().isdigit():
        raise SignatureError(f"the {SENDGRID_TIMESTAMP_HEADER} header is not a unix time")
    check_freshness(int(timestamp_header), now, tolerance)
    try:
        signature = base64.b64decode(signature_header.strip(), validate=True)
    except binascii.Error:
        raise SignatureError("the SendGrid signature is not base64") from None
    try:
        public_key.verify(signature, timestamp_header.strip().encode() + body,
                          ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("the SendGrid signature does not match the body") from None
