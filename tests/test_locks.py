"""locks.section_lock: a real lock with OS threads, none under gevent (a subprocess,
since gevent must patch before anything else is imported)."""
import subprocess
import sys
import threading

from gateway_app.locks import section_lock
from tests.support.servers import ROOT


def test_with_os_threads_it_is_a_real_lock():
    lock = section_lock()
    assert isinstance(lock, type(threading.Lock()))
    with lock:
        assert not lock.acquire(blocking=False)


def test_under_gevent_greenlets_never_interleave_in_a_section_without_it():
    """What the no-op relies on: greenlets switch only where one blocks, so counts
    updated in sections that make no blocking call are never lost."""
    script = """
from gevent import monkey; monkey.patch_all()
import gevent
from gateway_app.locks import section_lock
lock = section_lock()
counts = {}
def bump(n):
    for _ in range(n):
        with lock:
            counts["k"] = counts.get("k", 0) + 1
        gevent.sleep(0)
gevent.joinall([gevent.spawn(bump, 500) for _ in range(20)])
print(type(lock).__name__, counts["k"])
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.split() == ["_NoLock", "10000"]
