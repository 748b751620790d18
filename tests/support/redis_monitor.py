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
    # MONITOR shows the whole server: keep this database's commands (one per xdist worker
    # on a shared REDIS_URL)
    database = client.connection_pool.connection_kwargs.get("db", 0)
    seen, stop = [], threading.Event()
    sentinel = f"end-{uuid.uuid4().hex}"
    # connected (and its database selected) before MONITOR starts: only the ECHO is seen
    sender = redis_lib.Redis.from_url(redis_url)
    sender.ping()
    with client.monitor() as monitor:
        def collect():
            while not stop.is_set():
                try:
                    command = monitor.next_command()
                except redis_lib.TimeoutError:
                    continue
                if command.get("client_type") != "lua" and command.get("db") == database:
                    seen.append(command["command"])
        collector = threading.Thread(target=collect)
        collector.start()
        try:
            yield seen
        finally:
            sender.echo(sentinel)
            deadline = time.monotonic() + 5
            while not any(sentinel in command for command in seen) and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            collector.join()
    sender.close()
    client.close()
