"""What clients send to Redis during a block, read through MONITOR (round-trip tests)."""
import threading
import uuid
from contextlib import contextmanager

import redis as redis_lib

# how long the end of a block may take to show in MONITOR (the sentinel sent after it)
SENTINEL_WAIT = 5.0


@contextmanager
def redis_commands(redis_url):
    """The commands clients send to Redis meanwhile (MONITOR), without those a script runs
    inside Redis (they cost no round trip), up to a sentinel sent at the end.

    The reader blocks without a timeout until the sentinel comes: redis-py drops a
    connection whose read times out, which would end MONITOR at the block's first pause.
    """
    client = redis_lib.Redis.from_url(redis_url)
    # MONITOR shows the whole server: keep this database's commands (one per xdist worker
    # on a shared REDIS_URL)
    database = client.connection_pool.connection_kwargs.get("db", 0)
    seen, ended = [], threading.Event()
    sentinel = f"end-{uuid.uuid4().hex}"
    # connected (and its database selected) before MONITOR starts: only the ECHO is seen
    sender = redis_lib.Redis.from_url(redis_url)
    sender.ping()
    with client.monitor() as monitor:
        def collect():
            try:
                while True:
                    command = monitor.next_command()
                    if command.get("client_type") != "lua" and command.get("db") == database:
                        seen.append(command["command"])
                    if sentinel in command["command"]:
                        return
            except (redis_lib.RedisError, OSError):
                return   # the monitor was closed: the sentinel never came
            finally:
                ended.set()
        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        try:
            yield seen
        finally:
            sender.echo(sentinel)
            ended.wait(SENTINEL_WAIT)
    # leaving ``monitor`` closed its connection, which ends a reader still waiting
    collector.join(SENTINEL_WAIT)
    sender.close()
    client.close()
