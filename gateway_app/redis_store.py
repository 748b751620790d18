"""The shared Redis client: blocking pool, short timeouts, no hidden retries (DESIGN.md)."""
import ssl
import threading

import redis
from gevent import monkey
from gevent import sleep as gevent_sleep
from redis.backoff import NoBackoff
from redis.retry import Retry


def make_redis(url, socket_timeout=0.25, pool_size=200):
    """Return a client, or None when no Redis is configured (in-process stores are used)."""
    if not url:
        return None
    kwargs = {
        "max_connections": pool_size,
        "timeout": socket_timeout,          # wait for a free pooled connection
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 30,
        # fail fast: a request must never wait longer than one socket timeout on Redis
        "retry": Retry(NoBackoff(), 0),
    }
    if url.startswith("rediss://"):
        # Platform Redis add-ons present self-signed certificates.
        kwargs["ssl_cert_reqs"] = ssl.CERT_NONE
        kwargs["ssl_check_hostname"] = False
    pool = redis.BlockingConnectionPool.from_url(url, **kwargs)
    return redis.Redis(connection_pool=pool)


class _Batch:
    def __init__(self):
        self.keys = set()
        self.done = threading.Event()
        self.values = None
        # what readers see if the leader never finishes (killed greenlet)
        self.error = ConnectionError("the shared read was abandoned")


class BatchedReads:
    """Concurrent reads of one worker share one MGET, never one sent before they arrived.

    The first reader waits one scheduler turn so readers already running (other gevent
    greenlets) can add their keys, closes the batch and fetches; readers arriving later
    start the next batch. Every reader therefore sees values read by Redis after it
    started, which is all consistency needs, and a busy worker pays far less than one
    round trip per request.
    """

    # a safety net only: the leader's fetch is bounded by the Redis socket timeout
    FOLLOWER_WAIT = 10.0

    def __init__(self, fetch):
        self.fetch = fetch              # sorted keys -> {key: token}
        self.lock = threading.Lock()
        self.open = None
        # with OS threads a yield costs a scheduler round and gathers nobody
        self.gevent = monkey.is_module_patched("threading")

    def read(self, keys):
        with self.lock:
            leader = self.open is None
            if leader:
                self.open = _Batch()
            batch = self.open
            batch.keys.update(keys)
        if leader:
            self.run(batch)
        elif not batch.done.wait(self.FOLLOWER_WAIT):
            raise TimeoutError("the shared read did not finish")
        if batch.error is not None:
            raise batch.error
        return [batch.values[key] for key in keys]

    def run(self, batch):
        try:
            if self.gevent:
                gevent_sleep(0)  # let the greenlets that are ready join this batch
            self.close(batch)
            batch.values = self.fetch(sorted(batch.keys))
            batch.error = None
        except Exception as exc:  # handed to every reader of the batch, who decide
            batch.error = exc
        finally:  # even when the leader is killed, no reader may join or wait for a dead batch
            self.close(batch)
            batch.done.set()

    def close(self, batch):
        with self.lock:
            if self.open is batch:
                self.open = None
