"""Admin: companies."""
from . import blp  # noqa: F401
