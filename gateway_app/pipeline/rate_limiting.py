"""Stage 3: rate limiting, the seed's five layers (ip, user, company, endpoint, resource)."""
from .base import Stage


class RateLimitingStage(Stage):
    name = "rate_limiting"
    section = "rate_limiting"
