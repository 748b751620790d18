"""Forwarding one request to one instance of a remote service, streaming both ways.

The instance is trusted with the gateway's decision, not with the client's
credential: the client's Authorization, X-API-Key and Cookie never leave the
gateway; the instance receives who the caller is in X-Gateway-* headers instead
(any X-Gateway-* header the client sent is dropped first, so it cannot be spoofed).

Calls go over kept connections (discovery/upstream.py: one pool per instance, kept by
the worker and sized to its concurrency), so steady load opens no new connections.
Bodies are never held whole: the request body is read from the client as it is sent
on, and an answer is relayed in blocks unless it is small enough to keep
(``UpstreamPools.buffer_bytes``), which is what lets the caching stage store it. Bodies
pass as they are (no decoding), so their Content-Length and Content-Encoding still
describe them.
"""
import functools
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

from ..responses import made_headers
from .signing import signature
from .upstream import BLOCK, ConnectFailed, ExchangeFailed, InstancePool

# RFC 9110 section 7.6.1 connection-specific fields (plus the older Proxy-Connection and
# Keep-Alive); each message's Connection header may name more
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
# the gateway answers Expect: 100-continue itself (gunicorn does, reading the body)
NOT_FORWARDED = HOP_BY_HOP | {"host", "authorization", "x-api-key", "cookie", "x-csrf-token",
                              "expect"}
# cookies on the gateway's domain are the gateway's own (its session), never an instance's;
# so are the rate limits a client meets (the rate-limiting stage adds the gateway's) and
# which browser origins may read the answer (the cors stage decides, for every answer).
# The gateway's server writes its own Date and Server on every answer: the instance's
# would make a second Date (RFC 9110 section 6.6.1 allows one); nginx drops both too
NOT_RETURNED = HOP_BY_HOP | {"set-cookie", "ratelimit", "ratelimit-policy", "date", "server"}
NOT_RETURNED_PREFIX = "access-control-"
IDENTITY_PREFIX = "x-gateway-"
# set by the gateway (from the client's, where a chain continues)
SET_BY_THE_GATEWAY = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "x-request-id"}
# RFC 9110 section 9.2.2: a request that may be sent again without a different effect
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
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
    length: int           # the body's Content-Length (0 when chunked or absent)

    @property
    def may_retry(self):
        """After a connect failure nothing was sent; RFC 9110 still lets only an idempotent
        request be sent again."""
        return self.method in IDEMPOTENT


@functools.lru_cache(maxsize=512)
def environ_key(name):
    """The WSGI environ key of header ``name`` (``x-private`` -> ``HTTP_X_PRIVATE``)."""
    key = name.strip().upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


class ForwardedNames(dict):
    """WSGI environ key -> the name its header goes on with (``HTTP_X_CUSTOM`` -> ``X-Custom``,
    as werkzeug's EnvironHeaders names it), or None for a key that is not a header passed on
    as it came. Worked out once per key; past ``kept`` keys (a client's made-up header
    names) they are worked out and not kept."""

    kept = 1024
    # the environ keys of the client's headers that are never passed on as they came
    never = frozenset(environ_key(name) for name in NOT_FORWARDED | SET_BY_THE_GATEWAY)
    identity = environ_key(IDENTITY_PREFIX)   # the client's X-Gateway-*: never, so never spoofed

    def __missing__(self, key):
        if key.startswith("HTTP_"):
            passed = (key not in self.never and not key.startswith(self.identity)
                      and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))
        else:
            passed = key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        name = key.removeprefix("HTTP_").replace("_", "-").title() if passed else None
        if len(self) < self.kept:
            self[key] = name
        return name


FORWARDED_NAMES = ForwardedNames()


def forwarded_headers(request, ctx, signing_secret=None):
    """The headers the instance receives, read in one pass over the WSGI environ (where
    gunicorn has already checked the client's names and values)."""
    environ = request.environ
    names = FORWARDED_NAMES
    headers = {}
    for key, value in environ.items():
        name = names[key]
        # as werkzeug does, an empty header is passed on, but not an empty Content-Type/-Length
        if name is not None and (value or key.startswith("HTTP_")):
            headers[name] = value
    listed = environ.get("HTTP_CONNECTION")
    if listed:   # headers named in Connection are hop-by-hop for this message too
        for key in {environ_key(name) for name in listed.split(",") if name.strip()}:
            headers.pop(names[key], None)
    remote_addr = environ.get("REMOTE_ADDR")
    prior = environ.get("HTTP_X_FORWARDED_FOR")
    headers["X-Forwarded-For"] = f"{prior}, {remote_addr}" if prior else (remote_addr or "")
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    via = f"{environ.get('SERVER_PROTOCOL', 'HTTP/1.1').removeprefix('HTTP/')} gateway"
    prior_via = environ.get("HTTP_VIA")
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


# RFC 3986 section 3.3: what a path segment holds unencoded besides letters, digits and
# -._~ ("/" between segments); a query may hold "/" and "?" too, and keeps the client's
# own escapes ("%")
PATH_SAFE = "/:@!$&'()*+,;="
QUERY_SAFE = "/?:@!$&'()*+,;=%"


def target_of(environ):
    """The request target for the instance: the path as the server decoded it, encoded
    again, and the client's query with whatever it sent unencoded (a space, a byte past
    ASCII) encoded. WSGI gives both as latin-1 strings of the bytes."""
    path = quote_from_bytes(environ.get("PATH_INFO", "").encode("latin-1"), PATH_SAFE)
    path = path if path.startswith("/") else f"/{path}"
    query = environ.get("QUERY_STRING")
    return f"{path}?{quote_from_bytes(query.encode('latin-1'), QUERY_SAFE)}" if query else path


def outbound_request(request, ctx, signing_secret=None):
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    length = environ.get("CONTENT_LENGTH")
    length = int(length) if length and length.isdigit() else 0
    return OutboundRequest(method=request.method,
                           path_and_query=target_of(environ),
                           headers=forwarded_headers(request, ctx, signing_secret),
                           body=request.stream if (length or chunked) else None,
                           chunked=chunked and not length, length=length)


class Answer:
    """An instance's answer whose body is still on its connection."""

    def __init__(self, pool, connection, status, headers, method):
        self.pool = pool
        self.connection = connection
        self.status = status
        self.headers = headers
        self.method = method

    @property
    def has_body(self):
        return not (self.method == "HEAD" or self.status in NO_BODY_STATUSES)

    def blocks(self):
        """The body as it comes; the connection goes back to the pool once it is all read,
        and is closed if the reader stops first (its rest would be unread)."""
        finished = False
        try:
            yield from self.connection.receive_blocks()
            finished = True
        finally:
            if finished:
                self.pool.put_back(self.connection)
            else:
                self.connection.close()

    def discard(self):
        self.connection.close()


class UpstreamPools:
    """The worker's kept connections to the instances, a pool per instance, each keeping up
    to ``size`` idle connections (the worker's concurrency)."""

    def __init__(self, size, connect_timeout, read_timeout, buffer_bytes):
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.buffer_bytes = buffer_bytes
        self.pools = {}

    def pool_for(self, instance):
        pool = self.pools.get(instance.url)
        if pool is None:
            pool = self.pools[instance.url] = InstancePool(instance, self.size, self.connect_timeout,
                                                           self.read_timeout)
        return pool

    def keep_only(self, urls):
        """Close the kept connections of instances no longer registered."""
        for url in [url for url in self.pools if url not in urls]:
            self.pools.pop(url).close()

    def send(self, instance, outbound):
        """The instance's answer (head read, body not yet); raises UpstreamFailure.

        A 5xx counts as a failure (the instance is broken); a 4xx is the service's
        answer to this request and is passed through. A kept connection the instance
        had closed is replaced once, when nothing of the client's body was read yet.
        """
        pool = self.pool_for(instance)
        while True:
            try:
                connection = pool.connection()
            except ConnectFailed as exc:
                raise UpstreamFailure(instance, f"connect failed: {exc}", connect=True) from exc
            try:
                status, headers = self.exchange(pool, connection, outbound)
                break
            except ExchangeFailed as exc:
                connection.close()
                if connection.reused and exc.before_answer and outbound.body is None:
                    continue
                raise UpstreamFailure(instance, str(exc)) from exc
            except BaseException:   # the client went away mid-body, or the greenlet was killed
                connection.close()
                raise
        answer = Answer(pool, connection, status, headers, outbound.method)
        if status >= 500:
            answer.discard()
            raise UpstreamFailure(instance, f"answered {status}")
        return answer

    @staticmethod
    def exchange(pool, connection, outbound):
        body = outbound.body
        connection.send_request(outbound.method, outbound.path_and_query, pool.host_header, outbound.headers,
                                iter(lambda: body.read(BLOCK), b"") if body is not None else None,
                                outbound.chunked, outbound.length)
        return connection.receive_head(head_only=outbound.method == "HEAD")


def returned_headers(answer, instance):
    """(the headers the client gets, the body's declared length or None), in one pass over
    the instance's: not the hop-by-hop ones (with those its Connection header names), nor
    those the gateway decides itself; and which instance answered."""
    kept = []
    listed = None
    length = None
    for name, value in answer.headers:
        lowered = name.lower()
        if lowered in NOT_RETURNED or lowered.startswith(NOT_RETURNED_PREFIX):
            if lowered == "connection":
                # the names it lists that are dropped anyway (its usual keep-alive) need no second pass
                options = (part.strip().lower() for part in value.split(","))
                listed = [*(listed or ()), *(option for option in options if option not in NOT_RETURNED)]
            continue
        if lowered == "content-length":
            length = int(value) if value.isdigit() else None
        kept.append((name, value))
    if listed:
        kept = [(name, value) for name, value in kept if name.lower() not in listed]
    kept.append(("X-Gateway-Instance", instance.id))
    return kept, length


def to_flask_response(response_class, answer, instance, buffer_bytes, on_bytes):
    """The client's response: kept whole when small and sized (so it may be cached),
    otherwise relayed block by block as the instance sends it (never cached)."""
    returned, length = returned_headers(answer, instance)
    # httptools refuses a header value holding CR, LF or NUL, so the instance's may go in
    # unchecked
    headers = made_headers(returned)
    if not answer.has_body:
        for _block in answer.blocks():   # none: the connection goes back to the pool
            pass
        response = response_class(status=answer.status, headers=headers)
        response.response = []    # no body, and the instance's Content-Length kept as it said
        return response
    if length is not None and length <= buffer_bytes:
        try:
            body = b"".join(answer.blocks())
        except ExchangeFailed as exc:
            raise UpstreamFailure(instance, f"body: {exc}") from exc
        on_bytes(len(body))
        # the parser read exactly the instance's Content-Length, which the headers keep
        response = response_class(status=answer.status, headers=headers)
        response.response = [body]
        return response
    return response_class(relay(answer, on_bytes), status=answer.status, headers=headers,
                          direct_passthrough=True)


def relay(answer, on_bytes):
    for block in answer.blocks():
        on_bytes(len(block))
        yield block
