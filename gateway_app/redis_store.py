"""The shared Redis client: blocking pool, short timeouts, no hidden retries (docs/architecture.md)."""
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
        self.items = []
        self.done = threading.Event()
        self.results = None
        # what callers see if the leader never finishes (killed greenlet)
        self.error = ConnectionError("the shared Redis call was abandoned")


class CoalescedCalls:
    """Concurrent calls of one worker go to Redis together, one batch in flight at a time.

    Group commit: the first caller of a batch leads it. It waits for the batch in
    flight (if any) to come back, then one scheduler turn so callers already running
    (other gevent greenlets) can join, closes the batch and sends it in one round trip.
    Callers arriving meanwhile form the next batch. ``run_batch(items)`` returns one
    result per item, in order. A busy worker thus pays far less than one round trip per
    request, an idle one adds no wait, and every caller's answer was computed by Redis
    after the caller started.
    """

    def __init__(self, run_batch):
        self.run_batch = run_batch
        self.lock = threading.Lock()   # held only to look at and set the two batches
        self.open = None        # the batch new callers join
        self.in_flight = None   # the batch sent and not yet answered
        # with OS threads a yield costs a scheduler round and gathers nobody
        self.gevent = monkey.is_module_patched("threading")

    def call(self, item):
        with self.lock:
            leader = self.open is None
            if leader:
                self.open = _Batch()
            batch = self.open
            index = len(batch.items)
            batch.items.append(item)
            ahead = self.in_flight
        # Waits carry no timeout of their own (under gevent each would arm a timer): a
        # batch's leader always sets ``done`` (lead's finally, which a killed greenlet
        # runs too), after a round trip bounded by the Redis socket timeout.
        if leader:
            self.lead(batch, ahead)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.results[index]

    def lead(self, batch, ahead):
        try:
            if ahead is not None:
                ahead.done.wait()
            elif self.gevent:
                gevent_sleep(0)  # let the greenlets that are ready join this batch
            self.close(batch)
            batch.results = self.run_batch(batch.items)
            batch.error = None
        except Exception as exc:  # handed to every caller of the batch, who decide
            batch.error = exc
        finally:  # even when the leader is killed, no caller may join or wait for a dead batch
            self.close(batch)
            with self.lock:
                if self.in_flight is batch:
                    self.in_flight = None
            batch.done.set()

    def close(self, batch):
        with self.lock:
            if self.open is batch:
                self.open = None
                self.in_flight = batch


class BatchedReads:
    """Concurrent reads of one worker share one MGET (see CoalescedCalls)."""

    def __init__(self, fetch):
        self.fetch = fetch              # sorted keys -> {key: value}
        self.calls = CoalescedCalls(self.read_batch)

    def read(self, keys):
        return self.calls.call(list(keys))

    def read_batch(self, key_lists):
        values = self.fetch(sorted(set().union(*key_lists)))
        return [[values[key] for key in keys] for keys in key_lists]
