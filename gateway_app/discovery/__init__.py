"""Service discovery: registry, health checks, load balancer and the upstream proxy."""
