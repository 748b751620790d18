"""What is stored for a response, when a response may be stored, and how a copy is served."""
import time

from werkzeug.http import generate_etag, quote_etag

from ..responses import GatewayResponse, header_names, made_headers

# added per request by other stages or by the server, never part of a stored copy
PER_REQUEST_HEADERS = {"x-request-id", "date", "content-length", "x-cache", "age", "etag",
                       "set-cookie", "retry-after", "ratelimit", "ratelimit-policy"}


def strong_etag(body):
    return quote_etag(generate_etag(body))


def refusal_reason(response, max_bytes, names=None):
    """Why ``response`` must not be stored, or None. Errors, cookies and private data never are.
    ``names``: the lower-cased names of its headers, when the caller has them already (a
    search for an absent header costs werkzeug an exception)."""
    if not 200 <= response.status_code < 300 or response.status_code == 206:
        return "status"
    if response.is_streamed or response.direct_passthrough:
        return "streamed"
    if names is None:
        names = header_names(response.headers)
    if "set-cookie" in names:
        return "set-cookie"
    # most answers carry no Cache-Control: parsed only when there is one
    if "cache-control" in names and (response.cache_control.private or response.cache_control.no_store):
        return "cache-control"
    if "content-length" in names and (response.content_length or 0) > max_bytes:
        return "too-large"
    return None


def capture(response, etag=None):
    """The stored form: plain immutable tuples, so a stored copy never depends on a class
    path and L1 can keep it as it is (tiers.WorkerMemoryCache). ``etag``: the body's, when
    the caller has worked it out already."""
    body = response.get_data()
    headers = tuple((name, value) for name, value in response.headers.items()
                    if name.lower() not in PER_REQUEST_HEADERS)
    return (response.status_code, headers, body, etag or strong_etag(body), time.time())


def age_of(stored):
    return max(0, int(time.time() - stored[4]))


def serve(stored, cache_status):
    status, headers, body, etag, _stored_at = stored
    # the stored headers were checked when the response was first made; the others are
    # never among them (PER_REQUEST_HEADERS): added, not searched and replaced. The body
    # goes in as a list, which werkzeug takes as it is (bytes would be measured again).
    return GatewayResponse([body], status=status, headers=made_headers((
        *headers, ("Content-Length", str(len(body))), ("ETag", etag),
        ("Age", str(age_of(stored))), ("X-Cache", cache_status))))
