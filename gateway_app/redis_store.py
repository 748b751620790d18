"""The shared Redis client: blocking pool, short timeouts, no hidden retries (docs/architecture.md)."""
import os
import ssl
import threading

import hiredis
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


class KeptConnection:
    """One Redis connection kept by a batcher, which never has two calls in flight.

    A batcher's calls are the request path's: taking and returning a pooled connection
    and redis-py's per-command wrappers cost about twice the CPU of the round trip itself
    (bench/RESULTS.md), so its one call at a time goes over a connection of its own,
    made with the pool's settings (timeouts, TLS) through redis-py's public Connection
    API. Commands are packed by hiredis in one call (redis-py's packer first runs its
    encoder over every argument in Python: five times the cost for a batch's script
    call of a hundred arguments). A failed connection is dropped and the next call
    connects afresh; a forked child makes its own.
    """

    def __init__(self, client):
        self.pool = client.connection_pool
        self.lock = threading.Lock()
        self.connection = None
        self.pid = None

    def execute(self, *args):
        """The reply of one command, as the server sent it (no response callbacks)."""
        with self.lock:
            connection = self._connection()
            try:
                connection.send_packed_command([hiredis.pack_command(args)])
                return connection.read_response()
            except redis.ResponseError:
                raise   # the server answered: the connection is fine
            except BaseException:
                # a timeout or a killed greenlet leaves a reply unread on the socket
                connection.disconnect()
                raise

    def _connection(self):
        if self.connection is None or self.pid != os.getpid():
            # after a fork the parent's socket is not ours to use or to close
            self.connection = self.pool.connection_class(**self.pool.connection_kwargs)
            self.pid = os.getpid()
        return self.connection


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
    """The worker's reads of small keys that every warm request makes (a cached
    principal's versions, a cache namespace's generations): concurrent reads share one
    MGET, whichever stage they come from (see CoalescedCalls)."""

    def __init__(self, connection):
        self.connection = connection    # a KeptConnection
        self.calls = CoalescedCalls(self.read_batch)

    def read(self, keys):
        """The raw values of ``keys`` (None where absent), read after this call began."""
        return self.calls.call(list(keys))

    def read_batch(self, key_lists):
        keys = sorted(set().union(*key_lists))
        values = dict(zip(keys, self.connection.execute("MGET", *keys)))
        return [[values[key] for key in keys] for keys in key_lists]
