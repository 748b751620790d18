"""Stage 5: circuit breaker. A view that depends on an open upstream gets its fallback."""
from .base import Stage


class CircuitBreakerStage(Stage):
    name = "circuit_breaker"
    section = "circuit_breaker"
