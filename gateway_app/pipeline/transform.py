"""Stage 7: request/response transform: request id, security headers, header hygiene."""
from .base import Stage


class TransformStage(Stage):
    name = "transform"
    section = "transform"
    always_after = True

    def after(self, ctx, request, response):
        response.headers["X-Request-ID"] = ctx.request_id
        for name, value in self.config.get("security_headers", {}).items():
            response.headers.setdefault(name, value)
        # Retry-After belongs to 429 and 503 only (CONTRACT.md section 4 and 6)
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response
