"""Stage 4: caching. L1 in the worker, L2 in Redis, invalidated by domain events."""
from .base import Stage


class CachingStage(Stage):
    name = "caching"
    section = "caching"
