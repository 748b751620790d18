"""Forwarding one request to one instance of a remote service.

The instance is trusted with the gateway's decision, not with the client's
credential: the client's Authorization, X-API-Key and Cookie never leave the
gateway; the instance receives who the caller is in X-Gateway-* headers instead
(any X-Gateway-* header the client sent is dropped first, so it cannot be spoofed).
"""
from dataclasses import dataclass

import requests

from .signing import signature

# RFC 9110 section 7.6.1 connection-specific fields, plus the ones requests recomputes
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "authorization", "x-api-key", "cookie",
                              "x-csrf-token"}
# requests has already decoded the body, so the length and encoding no longer describe it;
# cookies on the gateway's domain are the gateway's own (its session), never an instance's;
# so are the rate limits a client meets (the rate-limiting stage adds the gateway's) and
# which browser origins may read the answer (the cors stage decides, for every answer)
NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie", "ratelimit",
                             "ratelimit-policy"}
NOT_RETURNED_PREFIX = "access-control-"
IDENTITY_PREFIX = "x-gateway-"


class UpstreamFailure(Exception):
    """The instance could not be reached, timed out, or answered 5xx."""

    def __init__(self, instance, detail):
        super().__init__(f"{instance.url}: {detail}")
        self.instance = instance
        self.detail = detail


class NoInstanceAnswered(Exception):
    """Every healthy instance of a service failed (or none was healthy): one breaker failure."""

    def __init__(self, failures):
        super().__init__("; ".join(str(failure) for failure in failures) or "none healthy")
        self.failures = failures


@dataclass
class OutboundRequest:
    method: str
    path_and_query: str
    headers: dict
    body: bytes


def connection_listed(headers):
    """Headers named in Connection are hop-by-hop for this message too."""
    return {name.strip().lower() for name in headers.get("Connection", "").split(",") if name.strip()}


def forwarded_headers(request, ctx, signing_secret=None):
    drop = NOT_FORWARDED | connection_listed(request.headers)
    headers = {name: value for name, value in request.headers.items()
               if name.lower() not in drop and not name.lower().startswith(IDENTITY_PREFIX)}
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {request.remote_addr}" if prior else (request.remote_addr or "")
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    headers["X-Request-ID"] = ctx.request_id
    principal = ctx.principal
    if principal is not None:
        headers["X-Gateway-Company-Id"] = str(principal.company_id)
        headers["X-Gateway-Tier"] = principal.tier
        if principal.user_id is not None:
            headers["X-Gateway-User-Id"] = str(principal.user_id)
        if principal.role:
            headers["X-Gateway-Role"] = principal.role
        if principal.api_key_id is not None:
            headers["X-Gateway-Api-Key-Id"] = str(principal.api_key_id)
            headers["X-Gateway-Scopes"] = ",".join(principal.scopes)
    if signing_secret:
        headers["X-Gateway-Signature"] = signature(signing_secret, ctx.request_id, headers)
    return headers


def outbound_request(request, ctx, signing_secret=None):
    query = request.query_string.decode("latin-1")
    return OutboundRequest(method=request.method,
                           path_and_query=request.path + (f"?{query}" if query else ""),
                           headers=forwarded_headers(request, ctx, signing_secret),
                           body=request.get_data(cache=True))


def send_to_instance(session, instance, outbound, connect_timeout, read_timeout):
    """The one upstream call: returns the instance's response or raises UpstreamFailure.

    A 5xx counts as a failure (the instance is broken, try another); a 4xx is the
    service's answer to this request and is passed through.
    """
    try:
        response = session.request(outbound.method, instance.url + outbound.path_and_query,
                                   headers=outbound.headers, data=outbound.body or None,
                                   timeout=(connect_timeout, read_timeout), allow_redirects=False)
    except requests.RequestException as exc:
        raise UpstreamFailure(instance, exc.__class__.__name__) from exc
    if response.status_code >= 500:
        raise UpstreamFailure(instance, f"answered {response.status_code}")
    return response


def to_flask_response(response_class, upstream, instance):
    dropped = NOT_RETURNED | connection_listed(upstream.headers)
    headers = [(name, value) for name, value in upstream.headers.items()
               if name.lower() not in dropped and not name.lower().startswith(NOT_RETURNED_PREFIX)]
    response = response_class(upstream.content, status=upstream.status_code, headers=headers)
    response.headers["X-Gateway-Instance"] = instance.id
    return response
