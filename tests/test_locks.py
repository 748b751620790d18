"""section_lock: a real lock with OS threads, none under gevent (gateway_app/locks.py)."""
import subprocess
import sys
import threading

from gateway_app.locks import section_lock


def test_with_os_threads_a_section_is_entered_by_one_thread_at_a_time():
    lock = section_lock()
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with lock:
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(5)
    assert not lock.acquire(timeout=0.05)   # held by the other thread
    release.set()
    holder.join(5)
    assert lock.acquire(timeout=5)
    lock.release()


def test_under_gevent_a_section_takes_no_lock():
    # greenlets switch only where they block, and a section never blocks
    script = ("from gevent import monkey; monkey.patch_all()\n"
              "from gateway_app.locks import section_lock\n"
              "lock = section_lock()\n"
              "assert not hasattr(lock, 'acquire'), type(lock)\n"
              "with lock:\n    with lock:\n        print('nested')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nested"
