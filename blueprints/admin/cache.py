"""Admin: cache."""
from . import blp  # noqa: F401
