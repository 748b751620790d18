"""Round robin over the healthy instances, per worker, from a shared start.

Each worker turns its own counter (no Redis call per request); it starts from the
shared counter (Redis INCR, read with the worker's first copy of the registry), so that
the workers do not all send their first requests to the same instance. With instances A,
B healthy and C unhealthy, one worker's consecutive requests go A, B, A, B. The rest
of the rotation is returned too: it is the failover order when the chosen instance
cannot be reached.
"""


def rotation(healthy, turn):
    """``healthy`` instances starting at position ``turn`` (1-based counter), wrapping round."""
    if not healthy:
        return []
    start = (turn - 1) % len(healthy)
    return list(healthy[start:]) + list(healthy[:start])


class WorkerRotation:
    def __init__(self):
        self.turns = {}   # service -> this worker's count, begun at the shared start

    def order(self, service, view):
        """The instances of ``view`` in the order this request tries them."""
        count = self.turns.get(service)
        count = (view.start if count is None else count) + 1
        self.turns[service] = count
        return rotation(view.routable, count)
