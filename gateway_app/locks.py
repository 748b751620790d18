"""Locks for short sections that never block, which under gevent need none."""
import threading

from gevent import monkey


class _NoLock:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def section_lock():
    """A lock for a section that makes no blocking call (no I/O, no sleep, no wait on
    another greenlet or lock): threading.Lock with OS threads. Under gevent a greenlet
    runs until it blocks, so such a section is never entered twice at once, and a
    patched Lock (about 0.3 us a use, several uses per request) protects nothing."""
    return _NoLock() if monkey.is_module_patched("threading") else threading.Lock()
