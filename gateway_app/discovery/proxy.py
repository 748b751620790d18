"""Forwarding one request to one instance of a remote service, streaming both ways.

The instance is trusted with the gateway's decision, not with the client's
credential: the client's Authorization, X-API-Key and Cookie never leave the
gateway; the instance receives who the caller is in X-Gateway-* headers instead
(any X-Gateway-* header the client sent is dropped first, so it cannot be spoofed).

Calls go through urllib3 connection pools (one per instance, kept by the worker and
sized to its concurrency), so steady load opens no new connections. Bodies are never
held whole: the request body is read from the client as it is sent on, and an answer
is relayed in blocks unless it is small enough to keep (``UpstreamPools.buffer_bytes``),
which is what lets the caching stage store it. Bodies pass as they are (no decoding),
so their Content-Length and Content-Encoding still describe them.
"""
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError

from .signing import signature

# RFC 9110 section 7.6.1 connection-specific fields (plus the older Proxy-Connection and
# Keep-Alive); each message's Connection header may name more
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
# the gateway answers Expect: 100-continue itself (gunicorn does, reading the body)
NOT_FORWARDED = HOP_BY_HOP | {"host", "authorization", "x-api-key", "cookie", "x-csrf-token",
                              "expect"}
# cookies on the gateway's domain are the gateway's own (its session), never an instance's;
# so are the rate limits a client meets (the rate-limiting stage adds the gateway's) and
# which browser origins may read the answer (the cors stage decides, for every answer)
NOT_RETURNED = HOP_BY_HOP | {"set-cookie", "ratelimit", "ratelimit-policy"}
NOT_RETURNED_PREFIX = "access-control-"
IDENTITY_PREFIX = "x-gateway-"
# set by the gateway (from the client's, where a chain continues)
SET_BY_THE_GATEWAY = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "x-request-id"}
# RFC 9110 section 9.2.2: a request that may be sent again without a different effect
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
BLOCK = 64 * 1024
NO_BODY_STATUSES = (204, 304)


class UpstreamFailure(Exception):
    """The instance could not be reached, timed out, or answered 5xx.

    ``connect`` is True when the request never left the gateway (the connection could
    not be made): only then may it go to another instance, and only when idempotent.
    """

    def __init__(self, instance, detail, connect=False):
        super().__init__(f"{instance.url}: {detail}")
        self.instance = instance
        self.detail = detail
        self.connect = connect


class NoInstanceAnswered(Exception):
    """No instance gave an answer (or none was healthy): one breaker failure."""

    def __init__(self, failures):
        super().__init__("; ".join(str(failure) for failure in failures) or "none healthy")
        self.failures = failures


@dataclass
class OutboundRequest:
    method: str
    path_and_query: str
    headers: dict
    body: object          # a readable stream of the client's body, or None
    chunked: bool         # the client sent no length: the body goes on chunked

    @property
    def may_retry(self):
        """After a connect failure nothing was sent; RFC 9110 still lets only an idempotent
        request be sent again."""
        return self.method in IDEMPOTENT


def connection_listed(headers):
    """Headers named in Connection are hop-by-hop for this message too (werkzeug's and
    urllib3's header maps both have ``getlist``)."""
    return {name.strip().lower() for value in headers.getlist("Connection")
            for name in value.split(",") if name.strip()}


def forwarded_headers(request, ctx, signing_secret=None):
    drop = NOT_FORWARDED | SET_BY_THE_GATEWAY | connection_listed(request.headers)
    headers = {name: value for name, value in request.headers.items()
               if name.lower() not in drop and not name.lower().startswith(IDENTITY_PREFIX)}
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {request.remote_addr}" if prior else (request.remote_addr or "")
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    via = f"{request.environ.get('SERVER_PROTOCOL', 'HTTP/1.1').removeprefix('HTTP/')} gateway"
    prior_via = request.headers.get("Via")
    headers["Via"] = f"{prior_via}, {via}" if prior_via else via
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
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    sized = int(environ.get("CONTENT_LENGTH") or 0) > 0
    return OutboundRequest(method=request.method,
                           path_and_query=request.path + (f"?{query}" if query else ""),
                           headers=forwarded_headers(request, ctx, signing_secret),
                           body=request.stream if (sized or chunked) else None,
                           chunked=chunked and not sized)


class UpstreamPools:
    """The worker's connection pools to the instances, one per instance, each holding up to
    ``size`` idle connections (the worker's concurrency), so that steady load reuses them."""

    def __init__(self, size, connect_timeout, read_timeout, buffer_bytes):
        self.size = size
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.buffer_bytes = buffer_bytes
        self.pools = {}

    def pool_for(self, instance):
        pool = self.pools.get(instance.url)
        if pool is None:
            # block=False: past ``size`` a call still gets a connection, closed after use
            pool = self.pools[instance.url] = urllib3.connection_from_url(
                instance.url, maxsize=self.size, block=False, retries=False, timeout=self.timeout)
        return pool

    def forget(self, keep_urls):
        """Close the pools of instances no longer registered."""
        for url in [url for url in self.pools if url not in keep_urls]:
            self.pools.pop(url).close()

    def send(self, instance, outbound):
        """The instance's answer, its body not yet read; raises UpstreamFailure.

        A 5xx counts as a failure (the instance is broken); a 4xx is the service's
        answer to this request and is passed through.
        """
        if outbound.chunked:
            body = iter(lambda: outbound.body.read(BLOCK), b"")
        else:
            body = outbound.body
        try:
            upstream = self.pool_for(instance).urlopen(
                outbound.method, outbound.path_and_query, body=body, headers=outbound.headers,
                retries=False, redirect=False, assert_same_host=False, preload_content=False,
                decode_content=False, release_conn=False, chunked=outbound.chunked)
        except ConnectTimeoutError as exc:   # refused, unreachable, or no answer to connect
            raise UpstreamFailure(instance, f"connect failed: {exc.__class__.__name__}", connect=True) from exc
        except (HTTPError, OSError) as exc:
            raise UpstreamFailure(instance, exc.__class__.__name__) from exc
        if upstream.status >= 500:
            upstream.release_conn() if upstream.length_remaining == 0 else upstream.drain_conn()
            raise UpstreamFailure(instance, f"answered {upstream.status}")
        return upstream


def returned_headers(upstream):
    dropped = NOT_RETURNED | connection_listed(upstream.headers)
    return [(name, value) for name, value in upstream.headers.items()
            if name.lower() not in dropped and not name.lower().startswith(NOT_RETURNED_PREFIX)]


def to_flask_response(response_class, upstream, instance, method, buffer_bytes, on_bytes):
    """The client's response: kept whole when small and sized (so it may be cached),
    otherwise relayed block by block as the instance sends it (never cached)."""
    headers = returned_headers(upstream)
    headers.append(("X-Gateway-Instance", instance.id))
    if method == "HEAD" or upstream.status in NO_BODY_STATUSES:
        upstream.release_conn() if upstream.length_remaining in (0, None) else upstream.drain_conn()
        response = response_class(status=upstream.status, headers=headers)
        response.response = []    # no body, and the instance's Content-Length kept as it said
        return response
    length = upstream.length_remaining
    if length is not None and length <= buffer_bytes:
        try:
            body = upstream.read()
        except (HTTPError, OSError) as exc:
            upstream.close()
            raise UpstreamFailure(instance, f"body: {exc.__class__.__name__}") from exc
        upstream.release_conn()
        on_bytes(len(body))
        return response_class(body, status=upstream.status, headers=headers)
    return response_class(relay(upstream, on_bytes), status=upstream.status, headers=headers,
                          direct_passthrough=True)


def relay(upstream, on_bytes):
    """The instance's body in blocks; the connection goes back to the pool once it is all
    read, and is closed when the client goes away first (its rest would be unread)."""
    finished = False
    try:
        for block in upstream.stream(BLOCK, decode_content=False):
            on_bytes(len(block))
            yield block
        finished = True
    finally:
        if finished:
            upstream.release_conn()
        else:
            upstream.close()
