"""Admin: registry."""
from . import blp  # noqa: F401
