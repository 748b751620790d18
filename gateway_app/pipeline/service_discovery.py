"""Stage 6: service discovery. A local service falls through to its blueprint; a remote
one is proxied to a healthy instance chosen round robin."""
from .base import Stage


class ServiceDiscoveryStage(Stage):
    name = "service_discovery"
    section = "service_discovery"
