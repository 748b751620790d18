"""Round robin over the healthy instances.

The turn counter is shared (Redis INCR per service; see Registry.next_turn), so with
instances A, B healthy and C unhealthy, consecutive requests - from any worker - go
A, B, A, B. The rest of the rotation is returned too: it is the failover order when
the chosen instance fails.
"""


def rotation(healthy, turn):
    """``healthy`` instances starting at position ``turn`` (1-based counter), wrapping round."""
    if not healthy:
        return []
    start = (turn - 1) % len(healthy)
    return healthy[start:] + healthy[:start]


def failover_order(registry, service):
    return rotation(registry.healthy_instances(service), registry.next_turn(service))
