"""Waiting out the edge of a rate-limit window that is fixed to the wall clock."""
import time


def clear_of_window_edge(window_seconds, needed_seconds=5.0):
    """Return once at least ``needed_seconds`` are left of the current window of
    ``window_seconds``, counted from the epoch as limits' in-memory storage counts them: a
    burst that straddles two such windows weighs its first part a little less, so one
    request more fits than the limit says (the Redis script's windows start at the first
    request instead)."""
    left = window_seconds - time.time() % window_seconds
    if left < needed_seconds:
        time.sleep(left + 0.01)
