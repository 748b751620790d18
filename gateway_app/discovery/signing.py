"""X-Gateway-Signature: what lets a remote instance tell that a call came through the
gateway, so that it may trust the identity headers the gateway sets.

    X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, payload)>

where ``payload`` is the timestamp, the request id and the identity headers, one per
line, in this order (an absent header as an empty line); ``secret`` is the service's
``signing_secret`` in conf/gateway.yaml. ``verify`` is what an instance runs
(docs/service-discovery.md shows it standalone).
"""
import hashlib
import hmac
import time

SIGNED_HEADERS = ("X-Gateway-Company-Id", "X-Gateway-User-Id", "X-Gateway-Role")
TOLERANCE = 300   # seconds: an instance refuses signatures older (or newer) than this


def payload(timestamp, request_id, headers):
    return "\n".join([str(timestamp), request_id, *(headers.get(name, "") for name in SIGNED_HEADERS)])


def digest(secret, text):
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signature(secret, request_id, headers, now=time.time):
    timestamp = int(now())
    return f"t={timestamp},v1={digest(secret, payload(timestamp, request_id, headers))}"


def verify(secret, headers, now=time.time, tolerance=TOLERANCE):
    """Whether ``headers`` (a case-insensitive mapping) carry a valid, recent signature."""
    parts = dict(part.split("=", 1) for part in headers.get("X-Gateway-Signature", "").split(",")
                 if "=" in part)
    if not parts.get("t", "").isdigit() or abs(now() - int(parts["t"])) > tolerance:
        return False
    expected = digest(secret, payload(parts["t"], headers.get("X-Request-ID", ""), headers))
    return hmac.compare_digest(expected, parts.get("v1", ""))
