"""What a sliding-window-counter limit looks like after a request, and when it frees up.

The weighting is limits' (flask-limiter's storage library): the previous window's count
counts in proportion to the time it still has to run, plus everything in the current one.
"""
import math
from typing import NamedTuple


def remaining(limit, used):
    """What is left of ``limit`` once ``used`` is spent (never below 0)."""
    return max(0, limit - used)


class Window(NamedTuple):
    """Immutable; a NamedTuple because every rate-limited request builds one per quota."""
    limit: int
    expiry: float            # the window length, seconds
    used: int                # the weighted count: what decides whether a request fits
    previous_count: int
    previous_ttl: float      # seconds the previous window still weighs
    current_count: int
    current_ttl: float       # seconds the current key lives (one window more than it counts)

    @classmethod
    def from_counts(cls, limit, expiry, previous_count, previous_ttl, current_count, current_ttl):
        """For a storage that reports the counts only: the weighting done here."""
        used = math.floor(previous_count * previous_ttl / expiry) + current_count
        return cls(limit, expiry, used, previous_count, previous_ttl, current_count, current_ttl)

    @property
    def remaining(self):
        return remaining(self.limit, self.used)

    def seconds_until_below(self, level):
        """Seconds until the weighted count is below ``level`` (0 if it already is).

        Before the current window ends only the previous window's weight decays; once it
        ends the current count becomes the previous one and decays in turn.
        """
        if self.used < level:
            return 0.0
        window_ends_in = max(0.0, self.current_ttl - self.expiry) if self.current_ttl else math.inf
        head_room = level - self.current_count
        if head_room >= 1 and self.previous_count:
            decayed_in = max(0.0, self.previous_ttl - head_room * self.expiry / self.previous_count)
            if decayed_in <= window_ends_in:
                return decayed_in
        if window_ends_in is math.inf:
            return self.expiry
        carried = self.current_count
        if carried < level:
            return window_ends_in
        return window_ends_in + self.expiry * (1 - level / carried)

    @property
    def retry_after(self):
        """Whole seconds until one more request fits (at least 1: the client must wait)."""
        return max(1, math.ceil(self.seconds_until_below(self.limit) + 0.001))

    @property
    def reset(self):
        """Whole seconds until a used unit returns: for an exhausted window, until a request
        fits again (Retry-After); 0 when nothing is used."""
        if self.used == 0:
            return 0
        return math.ceil(self.seconds_until_below(min(self.used, self.limit)) + 0.001)
