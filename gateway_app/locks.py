"""A lock for short sections that never block, which under gevent need none."""
import threading
from contextlib import nullcontext

from gevent import monkey


def section_lock():
    """A lock for a section that makes no blocking call (no I/O, no sleep, no wait on a
    greenlet or another lock), such as a look-up in a cachetools cache.

    With OS threads it is a threading.Lock. Under gevent (the web workers) a greenlet
    runs until it blocks, so two greenlets never are inside such a section at once, and
    gevent's Lock, a few tenths of a microsecond a use, would protect nothing: it is a
    context manager that does nothing.
    """
    return nullcontext() if monkey.is_module_patched("threading") else threading.Lock()
