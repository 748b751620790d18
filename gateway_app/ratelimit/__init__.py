"""Rate-limiting machinery behind pipeline stage 3 (pipeline/rate_limiting.py)."""
from .limiter import Decision, GatewayLimiter, LimiterUnavailable
from .quotas import LAYERS, LayerPolicies, Quota

__all__ = ["Decision", "GatewayLimiter", "LimiterUnavailable", "LAYERS", "LayerPolicies", "Quota"]
