"""Admin: breakers."""
from . import blp  # noqa: F401
