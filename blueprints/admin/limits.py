"""Admin: limits."""
from . import blp  # noqa: F401
