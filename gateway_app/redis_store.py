"""The shared Redis client: blocking pool, short timeouts, no hidden retries (docs/architecture.md)."""
import logging
import os
import ssl
import threading
import time

import hiredis
import redis
from gevent import monkey
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection
from gevent import sleep as gevent_sleep
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.exceptions import AskError, MovedError, NoScriptError, TryAgainError
from redis.retry import Retry

from .locks import section_lock
from .redis_urls import CLUSTER, SENTINEL, parse_redis_url

log = logging.getLogger("gateway.redis")


class RedisBreaker:
    """One worker's view of whether Redis answers, shared by every use of one client.

    After a call times out (Redis accepts connections but does not answer, or cannot be
    reached in time), every call skips Redis (fails at once with ConnectionError, which
    each use already treats as Redis being down) for ``retry_after`` seconds. A refused
    connection or one the server closed fails fast by itself and opens nothing. Then one call is let through to probe it, the others still
    skipping until it has answered. So a Redis that accepts connections but does not
    answer costs one socket timeout per interval per worker, not one per use per request.
    """

    def __init__(self, retry_after, clock=time.monotonic):
        self.retry_after = retry_after
        self.clock = clock
        self.open_until = 0.0    # 0: closed (calls go through)
        self.prober = None       # the connection probing Redis once the interval is over
        self.metrics = redis_metrics()

    def allow(self, connection):
        """Whether ``connection`` may send to Redis now: when the interval is over, the
        first to ask probes (its own hand-shake included), the others wait for it."""
        if not self.open_until:
            return True
        now = self.clock()
        if now < self.open_until:
            if connection is self.prober:
                return True
            self.metrics["skipped"].inc()
            return False
        self.open_until = now + self.retry_after
        self.prober = connection
        return True

    def failed(self):
        if not self.open_until:
            log.warning("Redis did not answer: skipping it for %.1f s, then probing", self.retry_after)
        self.metrics["failures"].inc()
        self.open_until = self.clock() + self.retry_after
        self.prober = None

    def succeeded(self):
        if self.open_until:
            log.warning("Redis answers again")
            self.open_until = 0.0
            self.prober = None

    def skipped(self):
        return redis.ConnectionError(f"Redis is skipped for up to {self.retry_after} s after a failure")


class BreakerGuarded:
    """Mixed into redis-py's connection class (the pool's ``connection_class``, documented
    for this): every command goes through the client's breaker, and a connection attempt
    that times out opens it too."""
    breaker = None   # set on the class made for each client (guarded_connection_class)

    def connect_check_health(self, *args, **kwargs):
        # not refused while open: the probe itself may have to connect first
        try:
            return super().connect_check_health(*args, **kwargs)
        except redis.TimeoutError:
            self.breaker.failed()
            raise

    def send_packed_command(self, *args, **kwargs):
        if not self.breaker.allow(self):
            raise self.breaker.skipped()
        try:
            # connect() is what asks the sentinels where the master is: sending on a
            # closed connection would connect to host/port as set. Called only when
            # closed: even connected, it runs redis-py's retry machinery on every call
            if not self.is_connected:
                self.connect()
            return super().send_packed_command(*args, **kwargs)
        except redis.TimeoutError:
            self.breaker.failed()
            raise

    def read_response(self, *args, **kwargs):
        try:
            response = super().read_response(*args, **kwargs)
        except redis.TimeoutError:
            self.breaker.failed()
            raise
        self.breaker.succeeded()
        return response


def guarded_connection_class(base, breaker):
    return type(f"BreakerGuarded{base.__name__}", (BreakerGuarded, base), {"breaker": breaker})


_redis_metrics = {}


def redis_metrics():
    """Created once per process: prometheus refuses duplicate names."""
    if not _redis_metrics:
        _redis_metrics["failures"] = Counter(
            "gateway_redis_failures_total", "Redis calls that timed out")
        _redis_metrics["skipped"] = Counter(
            "gateway_redis_skipped_total", "Redis calls skipped while the Redis breaker was open")
    return _redis_metrics


def make_redis(url, socket_timeout=0.25, pool_size=200, retry_after=1.0):
    """Return a client, or None when no Redis is configured (in-process stores are used).
    ``url``: one server, a Sentinel-managed master or a Cluster (redis_urls.py).
    ``retry_after``: how long every use skips Redis after a failure (RedisBreaker)."""
    if not url:
        return None
    location = parse_redis_url(url)
    breaker = RedisBreaker(retry_after)
    kwargs = {
        "max_connections": pool_size,
        "timeout": socket_timeout,          # wait for a free pooled connection
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 30,
        # fail fast: a request must never wait longer than one socket timeout on Redis
        "retry": Retry(NoBackoff(), 0),
    }
    if location.tls:
        # Platform Redis add-ons present self-signed certificates.
        kwargs["ssl_cert_reqs"] = ssl.CERT_NONE
        kwargs["ssl_check_hostname"] = False
    if location.topology == SENTINEL:
        return sentinel_master(location, breaker, kwargs)
    if location.topology == CLUSTER:
        return cluster_client(location, breaker, kwargs)
    pool = redis.BlockingConnectionPool.from_url(url, **kwargs)
    pool.connection_class = guarded_connection_class(pool.connection_class, breaker)
    return redis.Redis(connection_pool=pool)


class SentinelBlockingConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (asks the sentinels where the master is on every new connection,
    drops connections to a demoted master) that waits for a free connection instead of
    raising past its size, as the single-server pool does."""


def credentials(location):
    return {name: value for name, value in (("username", location.username),
                                            ("password", location.password)) if value}


def sentinel_master(location, breaker, kwargs):
    """The client of the master the sentinels name; it follows a failover by itself."""
    base = SentinelManagedSSLConnection if location.tls else SentinelManagedConnection
    sentinels = Sentinel(list(location.nodes),
                         sentinel_kwargs={"socket_timeout": kwargs["socket_timeout"],
                                          "socket_connect_timeout": kwargs["socket_connect_timeout"],
                                          **credentials(location)})
    return sentinels.master_for(location.service_name,
                                connection_pool_class=SentinelBlockingConnectionPool,
                                connection_class=guarded_connection_class(base, breaker),
                                db=location.db, **credentials(location), **kwargs)


def cluster_client(location, breaker, kwargs):
    """A Cluster client: a blocking pool per node; a MOVED reply (a failover, a resharding)
    is followed once after refreshing the slot map, never retried after a timeout."""
    base = redis.SSLConnection if location.tls else redis.Connection
    kwargs = {**kwargs, "retry": Retry(NoBackoff(), 1)}
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in location.nodes],
                        connection_class=guarded_connection_class(base, breaker),
                        connection_pool_class=redis.BlockingConnectionPool,
                        **credentials(location), **kwargs)


def is_cluster(client):
    return isinstance(client, RedisCluster)


def is_sentinel_managed(client):
    return isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool)


def write_kept(client, fill, deadline=2.0):
    """The replies of the writes ``fill(pipeline)`` adds, once they are safe from a failover.

    Sentinel replicates asynchronously: a write the master acknowledged and had not yet
    sent to its replica is lost when the replica is promoted, and during a failover the
    old master goes on acknowledging writes until it is demoted. So on a Sentinel-managed
    master a write that must not be lost (a session, a revocation, an invalidation) is
    followed by WAIT for one replica. Without that acknowledgement it is written again
    through a fresh connection until a replica acknowledges it, or it was written to a
    master the sentinels named after the one first written to (a failover happened), or
    every sentinel names the master written to with no failover under way (``settled``);
    after ``deadline`` seconds it fails like Redis being down. The writes must be idempotent
    or harmless to repeat (SET, DEL, a version's INCR). Elsewhere they are one pipeline
    as before (docs/redis-keys.md says what a Cluster's failover keeps).
    """
    if not is_sentinel_managed(client):
        pipe = client.pipeline(transaction=False)
        fill(pipe)
        return pipe.execute()
    pool = client.connection_pool
    wait_ms = max(1, int(pool.connection_kwargs["socket_timeout"] * 500))   # under the socket timeout
    give_up = time.monotonic() + deadline
    first_master = None
    while True:
        try:
            master = pool.get_master_address()   # asks the sentinels; drops connections to another
            first_master = first_master or master
            pipe = client.pipeline(transaction=False)
            fill(pipe)
            pipe.execute_command("WAIT", 1, wait_ms)
            *replies, replicas = pipe.execute()
            if replicas >= 1 or master != first_master or settled(pool, master):
                return replies
            failure = redis.ConnectionError("no replica acknowledged the write during a failover")
        except (redis.ConnectionError, redis.TimeoutError) as error:
            failure = error
        if time.monotonic() >= give_up:
            raise failure
        pool.disconnect()
        gevent_sleep(0.05)


def settled(pool, master):
    """Whether every sentinel names ``master`` and none is failing it over: then it stays
    the master, and a write it took is kept even before a replica acknowledges it (a
    promoted master's replica may take seconds to attach; a missing replica is no reason
    to refuse writes)."""
    try:
        for sentinel in pool.sentinel_manager.sentinels:
            state = sentinel.sentinel_master(pool.service_name)
            flags = state["flags"] if isinstance(state["flags"], set) else set(state["flags"].split(","))
            if (state["ip"], int(state["port"])) != tuple(master) or "failover_in_progress" in flags:
                return False
    except redis.RedisError:
        return False
    return True


def round_trips_for(client):
    """The worker's SharedRoundTrips over ``client``: per node on a Cluster."""
    if is_cluster(client):
        return ClusterRoundTrips(client)
    return SharedRoundTrips(KeptConnection(client))


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
        self.pool = client.connection_pool   # a cluster node's: client.get_redis_connection(node)
        self.lock = threading.Lock()
        self.connection = None
        self.pid = None

    def execute(self, *args):
        """The reply of one command, as the server sent it (no response callbacks)."""
        reply = self.execute_all([args])[0]
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    def execute_all(self, commands):
        """The replies of ``commands``, written at once and read in order: one round
        trip. An error reply is returned in its place (the connection is fine); any
        other failure drops the connection and is raised."""
        with self.lock:
            self.send(commands)
            return self.receive(len(commands))

    def send(self, commands):
        """Write ``commands`` at once; ``receive`` reads their replies (the caller holds
        ``lock`` from one to the other)."""
        connection = self._connection()
        try:
            connection.send_packed_command([b"".join(hiredis.pack_command(args) for args in commands)])
        except BaseException:
            connection.disconnect()
            raise

    def receive(self, count):
        connection = self._connection()
        try:
            return [self._reply(connection) for _reply in range(count)]
        except BaseException:
            # a timeout or a killed greenlet leaves replies unread on the socket
            connection.disconnect()
            raise

    @staticmethod
    def _reply(connection):
        try:
            return connection.read_response()
        except redis.ResponseError as error:
            return error

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
    after the caller started. An item's result that is an exception is raised to its
    caller alone.
    """

    def __init__(self, run_batch):
        self.run_batch = run_batch
        self.lock = section_lock()   # held only to look at and set the two batches
        self.open = None        # the batch new callers join
        self.in_flight = None   # the batch sent and not yet answered
        # with OS threads a yield costs a scheduler round and gathers nobody
        self.gevent = monkey.is_module_patched("threading")

    def call(self, item):
        result = self.call_many([item])[0]
        if isinstance(result, Exception):   # this caller's own failure, the others' answers stand
            raise result
        return result

    def call_many(self, items):
        """The results of ``items``, sent in one batch (one wait): an item that failed
        alone has its exception in its place; a failed batch raises."""
        with self.lock:
            leader = self.open is None
            if leader:
                self.open = _Batch()
            batch = self.open
            index = len(batch.items)
            batch.items.extend(items)
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
        return batch.results[index:index + len(items)]

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


class SharedRoundTrips:
    """The request path's Redis calls of one worker, whichever stage makes them, share
    one round trip at a time (CoalescedCalls): each round merges the calls of one kind
    into one command (every small read into one MGET, every rate-limit acquisition into
    one script call) and writes the round's commands together.

    A kind is an object with ``command(items)`` (the command's arguments) and
    ``answers(items, command, reply)`` (one answer per item); a kind whose command runs a script
    names its text as ``script``, loaded again when Redis has lost it (restart, flush).
    A failure of one kind's command fails only that kind's callers.
    """

    def __init__(self, connection):
        self.connection = connection    # a KeptConnection
        self.calls = CoalescedCalls(self.run_round)

    def call(self, kind, item):
        """``kind``'s answer for ``item``, from a round that began after this call."""
        return self.calls.call((kind, item))

    def call_many(self, calls):
        """The answers of ``calls`` ((kind, item) pairs), all from one round: one wait.
        A call that failed alone has its exception in its place."""
        return self.calls.call_many(calls)

    def run_round(self, tagged):
        """``tagged``: (kind, item) pairs; one answer (or exception) per pair, in order."""
        positions = {}   # kind -> indexes of its items in ``tagged``, in the order kinds arrived
        for index, (kind, _item) in enumerate(tagged):
            positions.setdefault(kind, []).append(index)
        items = {kind: [tagged[index][1] for index in indexes] for kind, indexes in positions.items()}
        commands = [kind.command(items[kind]) for kind in positions]
        replies = self.connection.execute_all(commands)
        results = [None] * len(tagged)
        for kind, command, reply in zip(positions, commands, replies):
            if isinstance(reply, NoScriptError) and getattr(kind, "script", None):
                reply = self.reloaded(kind, command)
            answers = ([reply] * len(items[kind]) if isinstance(reply, Exception)
                       else kind.answers(items[kind], command, reply))
            for index, answer in zip(positions[kind], answers):
                results[index] = answer
        return results

    def reloaded(self, kind, command):
        """The reply of ``command`` once ``kind``'s script is loaded again."""
        self.connection.execute("SCRIPT", "LOAD", kind.script)
        return self.connection.execute_all([command])[0]


class ClusterRoundTrips(SharedRoundTrips):
    """SharedRoundTrips on a Redis Cluster: a kind's items are grouped by hash slot (each
    item's keys share one, by the key layout of docs/redis-keys.md; ``kind.slot_key(item)``
    names one of them), one command per group, and the round's commands are written to
    every node they go to before any reply is read: still one round trip of waiting.

    A ``MOVED`` or ``ASK`` reply (a failover or a resharding moved the slot) refreshes
    the slot map and sends that command again, once; a connection that fails drops its
    node's commands (their callers degrade as with one server down) and the slot map is
    refreshed before the next round.
    """
    clustered = True

    def __init__(self, client):
        self.client = client
        self.kept = {}            # node name -> KeptConnection to that node
        self.stale_map = False    # refresh the slot map before the next round
        self.calls = CoalescedCalls(self.run_round)

    def run_round(self, tagged):
        """As SharedRoundTrips.run_round; a kind with ``parts(item)`` is answered from its
        parts' answers (``joined(item, answers)`` -> answer, calls to make after: a second
        round, only when some are asked for)."""
        made_of_parts = [(index, kind, item, kind.parts(item)) for index, (kind, item) in enumerate(tagged)
                         if hasattr(kind, "parts")]
        if not made_of_parts:
            return self.run_plain_round(tagged)
        plain = [call for call in tagged if not hasattr(call[0], "parts")]
        part_calls = [part for _index, _kind, _item, parts in made_of_parts for part in parts]
        answers = self.run_plain_round(plain + part_calls)
        results, after = [None] * len(tagged), []
        plain_answers, position = iter(answers[:len(plain)]), len(plain)
        for index, (kind, _item) in enumerate(tagged):
            if not hasattr(kind, "parts"):
                results[index] = next(plain_answers)
        for index, kind, item, parts in made_of_parts:
            results[index], calls = kind.joined(item, answers[position:position + len(parts)])
            position += len(parts)
            after += calls
        if after:
            self.run_plain_round(after)
        return results

    def run_plain_round(self, tagged):
        positions = {}
        for index, (kind, _item) in enumerate(tagged):
            positions.setdefault(kind, []).append(index)
        plan = []   # (kind, indexes into tagged, command)
        for kind, indexes in positions.items():
            groups = {}
            for index in indexes:
                groups.setdefault(key_slot(_encoded(kind.slot_key(tagged[index][1]))), []).append(index)
            for group in groups.values():
                plan.append((kind, group, kind.command([tagged[index][1] for index in group])))
        replies = self.execute([command for _kind, _group, command in plan])
        results = [None] * len(tagged)
        for (kind, group, command), reply in zip(plan, replies):
            items = [tagged[index][1] for index in group]
            if isinstance(reply, NoScriptError) and getattr(kind, "script", None):
                reply = self.reloaded(kind, command)
            answers = [reply] * len(items) if isinstance(reply, Exception) else kind.answers(items, command, reply)
            for index, answer in zip(group, answers):
                results[index] = answer
        return results

    def execute(self, commands, node_key=None):
        """Each command's reply (or exception), sent to the node that holds its first key
        (all to the node of ``node_key`` if given)."""
        if self.stale_map:
            self.refresh()
        replies = self.send_to_nodes(list(enumerate(commands)), node_key)
        moved = [(index, commands[index]) for index, reply in replies.items()
                 if isinstance(reply, (AskError, TryAgainError))]
        if moved:
            self.follow([replies[index] for index, _command in moved])
            replies.update(self.send_to_nodes(moved, node_key))
        return [replies[index] for index in range(len(commands))]

    def follow(self, redirections):
        """A MOVED reply names its slot's new master, and the slot map learns it from the
        reply, as redis-py's own cluster client does: right after a failover the node a
        refresh would ask may not have heard of it yet. An ASK or TRYAGAIN (a resharding
        under way) refreshes the whole map."""
        if all(isinstance(reply, MovedError) for reply in redirections):
            for reply in redirections:
                self.client.nodes_manager.move_slot(reply)
        else:
            self.refresh()

    def send_to_nodes(self, numbered, node_key):
        by_node = {}
        for index, command in numbered:
            node = self.client.get_node_from_key(node_key or _first_key(command))
            by_node.setdefault(node.name, (node, []))[1].append((index, command))
        replies, sent, held = {}, [], []
        try:
            for node, batch in by_node.values():
                kept = self.connection_to(node)
                kept.lock.acquire()
                held.append(kept)
                try:
                    kept.send([command for _index, command in batch])
                    sent.append((kept, batch))
                except redis.RedisError as error:
                    self.stale_map = True
                    replies.update((index, error) for index, _command in batch)
            for kept, batch in sent:
                try:
                    for (index, _command), reply in zip(batch, kept.receive(len(batch))):
                        replies[index] = reply
                except redis.RedisError as error:
                    self.stale_map = True
                    replies.update((index, error) for index, _command in batch)
        finally:   # a killed greenlet included
            for kept in held:
                kept.lock.release()
        return replies

    def connection_to(self, node):
        kept = self.kept.get(node.name)
        if kept is None:
            kept = self.kept[node.name] = KeptConnection(self.client.get_redis_connection(node))
        return kept

    def refresh(self):
        self.stale_map = False
        try:
            self.client.nodes_manager.initialize()
        except redis.RedisError as error:
            self.stale_map = True
            log.warning("Redis Cluster: the slot map could not be refreshed: %s", error)

    def reloaded(self, kind, command):
        return self.execute([("SCRIPT", "LOAD", kind.script), command], node_key=_first_key(command))[1]


def _encoded(key):
    return key if isinstance(key, bytes) else str(key).encode()


def _first_key(command):
    """The first key of MGET/SET/... (after the name) or EVALSHA (after sha and count)."""
    return command[3] if command[0] in ("EVALSHA", "EVAL") else command[1]


class BatchedReads:
    """The worker's reads of small keys that every warm request makes (a cached
    principal's versions, a cache namespace's generations): concurrent reads share one
    MGET, whichever stage they come from (see SharedRoundTrips)."""

    def __init__(self, round_trips):
        self.round_trips = round_trips

    def read(self, keys):
        """The raw values of ``keys`` (None where absent), read after this call began."""
        return self.round_trips.call(self, list(keys))

    def read_with(self, keys, calls):
        """``(values of keys, answers of calls)``, all from one round trip."""
        values, *answers = self.round_trips.call_many([(self, list(keys)), *calls])
        if isinstance(values, Exception):
            raise values
        return values, answers

    @staticmethod
    def slot_key(keys):
        return keys[0]   # a caller's keys share one hash slot (docs/redis-keys.md)

    @staticmethod
    def command(key_lists):
        return ("MGET", *sorted(set().union(*key_lists)))

    @staticmethod
    def answers(key_lists, command, reply):
        values = dict(zip(command[1:], reply))
        return [[values[key] for key in keys] for keys in key_lists]
