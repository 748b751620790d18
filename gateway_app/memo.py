"""Values worked out once per key and kept, for the request path's repeated inputs."""


class BoundedMemo(dict):
    """``key -> compute(key)``, computed on first use and kept.

    The keys met in practice are few (the same callers, URLs and quota sets over and
    over); the bound only stops a flood of distinct ones from growing the memo: once it
    is reached the memo starts afresh, which costs a recomputation, never a wrong value.
    """

    def __init__(self, compute=None, bound=10_000):
        super().__init__()
        self.compute = compute
        self.bound = bound

    def __missing__(self, key):
        return self.remember(key, self.compute(key))

    def remember(self, key, value):
        """Keep ``value`` for ``key`` (for callers whose value needs more than the key)."""
        if len(self) >= self.bound:
            self.clear()
        self[key] = value
        return value
