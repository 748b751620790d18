"""What a request gets when its upstream cannot answer (CONTRACT.md section 6).

One rule for every upstream, whether a provider behind a view (the circuit-breaker
stage, and a call failing inside the view) or a remote service (the service-discovery
stage): a GET is answered from the last good cached copy (``X-Cache: STALE``);
otherwise, or when there is none, 503 naming the service, with ``Retry-After``.
"""
from ..errors import problem_response


class Fallback:
    def __init__(self, stale_copy):
        self.stale_copy = stale_copy   # (ctx, request) -> the last good copy, or None

    def answer(self, ctx, request, service, retry_after, reason):
        if request.method == "GET":
            stale = self.stale_copy(ctx, request)
            if stale is not None:
                return stale
        retry_after = int(retry_after)
        return problem_response(
            503, "Service Unavailable",
            f"The upstream service '{service}' is unavailable ({reason}); retry after "
            f"{retry_after} s.", problem_type="upstream-unavailable",
            headers={"Retry-After": str(retry_after)}, service=service, retry_after=retry_after)
