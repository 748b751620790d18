"""What clients send to Redis during a block, read through MONITOR (round-trip tests)."""
import threading
import time
import uuid
from contextlib import contextmanager

import redis as redis_lib


@contextmanager
def redis_commands(redis_url):
    """The commands clients send to Redis meanwhile (MONITOR), without those a script runs
    inside Redis (they cost no round trip), up to a sentinel sent at the end."""
    client = redis_lib.Redis.from_url(redis_url, socket_timeout=0.1)
    seen, stop = [], threading.Event()
    sentinel = f"end-{uuid.uuid4().hex}"
    with client.monitor() as monitor:
        def collect():
            while not stop.is_set():
                try:
                    command = monitor.next_command()
                except redis_lib.TimeoutError:
                    continue
                if command.get("client_type") != "lua":
                    seen.append(command["command"])
        collector = threading.Thread(target=collect)
        collector.start()
        try:
            yield seen
        finally:
            redis_lib.Redis.from_url(redis_url).echo(sentinel)
            deadline = time.monotonic() + 5
            while not any(sentinel in command for command in seen) and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            collector.join()
    client.close()
