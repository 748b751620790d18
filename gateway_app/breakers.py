"""Circuit breakers around every provider and remote service (docs/contract.md section 6).

pybreaker supplies the state machine (closed -> open -> half-open -> closed). Its
defaults do not match the seed's policy, so this module changes it in one place:

* failures are counted in a time window (5 within 300 s), not consecutively: the
  storage keeps failure timestamps (a Redis sorted set) and a success does not
  erase them;
* ``call`` does not hold the breaker's lock while the wrapped call runs, so
  concurrent calls through one breaker run concurrently; through a closed breaker only
  a failure goes through pybreaker (a success changes nothing there);
* half-open admits ``half_open_probes`` trial calls across ALL workers: each open
  period has its own probe counter in Redis;
* state lives in Redis and falls back to per-process state when Redis fails;
* a breaker whose user reads its version with each request (``observe``: the
  service-discovery stage does, in the round trip the request makes anyway) keeps its
  state and opened_at in the worker, read again only when the version moved: every
  transition, by any worker, moves it. Redis is then written on failures and state
  changes only, and read on nothing else;
* every transition is logged and counted in Prometheus.
"""
import logging
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime

import pybreaker
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

log = logging.getLogger("gateway.breakers")

REDIS_RETRY_AFTER = 5.0   # seconds a worker keeps to per-process state after a Redis error
STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
transitions = Counter("gateway_breaker_transitions_total",
                      "Circuit breaker state changes seen by this process",
                      ["service", "from_state", "to_state"])
failures = Counter("gateway_breaker_failures_total", "Failed calls through a breaker", ["service"])
rejections = Counter("gateway_breaker_rejections_total",
                     "Calls refused because the breaker was open", ["service"])
state_gauge = Gauge("gateway_breaker_state", "0 closed, 1 half-open, 2 open", ["service"],
                    multiprocess_mode="mostrecent")


class MemoryWindow:
    """Per-process breaker state: used without Redis, and whenever Redis fails."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = pybreaker.STATE_CLOSED
        self.failures = deque()
        self.successes = 0
        self.opened_at = None
        self.probes = {}

    def add_failure(self, now, window):
        with self.lock:
            self.failures.append(now)
            return self._count(now, window)

    def count(self, now, window):
        with self.lock:
            return self._count(now, window)

    def _count(self, now, window):
        while self.failures and self.failures[0] <= now - window:
            self.failures.popleft()
        return len(self.failures)

    def take_probe(self, epoch, limit):
        with self.lock:
            self.probes = {epoch: self.probes.get(epoch, 0) + 1}
            return self.probes[epoch] <= limit


class WindowedStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker storage: state, opened_at and a failure time window, in Redis when it can.

    ``counter`` is the number of failures inside the window. ``reset_counter`` is a
    no-op because pybreaker calls it after every success; the window is cleared only
    when the breaker closes (``clear_failures``).
    """

    def __init__(self, name, redis_client, window, probe_ttl, clock=time.time):
        super().__init__(name)
        self.clock = clock
        self.redis = redis_client
        self.window = window
        self.probe_ttl = probe_ttl
        self.memory = MemoryWindow()
        self.prefix = f"gateway:breaker:{{{name}}}:"   # one hash tag per breaker (docs/redis-keys.md)
        self._redis_failed_at = None
        self.followed = False      # a user reads the version with every request (observe)
        self.seen_version = None
        self.cached = None         # (state, opened_at stamp) as read at seen_version

    # -- Redis with a per-process fallback ---------------------------------------------
    def _shared(self, operation, fallback):
        if self.redis is None:
            return fallback()
        if self._redis_failed_at is not None and time.time() - self._redis_failed_at < REDIS_RETRY_AFTER:
            return fallback()   # do not pay a socket timeout on every call while Redis is down
        try:
            result = operation(self.redis)
        except RedisError as exc:
            if self._redis_failed_at is None:
                log.warning("breaker %s: Redis unavailable, using per-process state (%s)",
                            self.name, type(exc).__name__)
            self._redis_failed_at = time.time()
            return fallback()
        self._redis_failed_at = None
        return result

    def key(self, part):
        return self.prefix + part

    # -- the worker's copy, for a breaker whose version is read with each request ------------
    def version_key(self):
        return self.key("version")

    def observe(self, version):
        """The breaker's version as a request just read it: a move drops the worker's copy."""
        self.followed = True
        if version != self.seen_version:
            self.seen_version = version
            self.cached = None

    def unfollow(self):
        """No version could be read: the state is read from Redis (or memory) each time
        until one is."""
        self.followed = False
        self.seen_version = None
        self.cached = None

    def _copy(self):
        """(state, opened_at stamp) from the worker's copy, or None when not kept."""
        if not self.followed or self.redis is None:
            return None
        if self.cached is None:
            def read(client):
                state, opened = client.mget(self.key("state"), self.key("opened_at"))
                return (state.decode() if state else pybreaker.STATE_CLOSED,
                        float(opened) if opened else None)
            self.cached = self._shared(read, lambda: None)
        return self.cached

    def _write(self, part, value):
        """Store ``part`` and move the version, so every worker's copy is read again."""
        def write(client):
            pipe = client.pipeline(transaction=True)
            pipe.set(self.key(part), value)
            pipe.incr(self.version_key())
            pipe.execute()
        self.cached = None
        self._shared(write, lambda: None)

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self):
        copy = self._copy()
        if copy is not None:
            return copy[0]

        def read(client):
            value = client.get(self.key("state"))
            return value.decode() if value else pybreaker.STATE_CLOSED
        return self._shared(read, lambda: self.memory.state)

    @state.setter
    def state(self, state):
        self.memory.state = state
        self._write("state", state)

    @property
    def opened_at(self):
        copy = self._copy()
        if copy is not None:
            stamp = copy[1]
        else:
            def read(client):
                value = client.get(self.key("opened_at"))
                return float(value) if value else None
            stamp = self._shared(read, lambda: self.memory.opened_at)
        return datetime.fromtimestamp(stamp, UTC) if stamp else None

    @opened_at.setter
    def opened_at(self, when):
        stamp = when.timestamp()
        self.memory.opened_at = stamp
        self._write("opened_at", repr(stamp))

    # -- failures in the window ------------------------------------------------------------
    def increment_counter(self):
        now = self.clock()
        self.memory.add_failure(now, self.window)

        def add(client):
            key = self.key("failures")
            pipe = client.pipeline(transaction=True)
            pipe.zadd(key, {f"{now!r}:{uuid.uuid4().hex[:8]}": now})
            pipe.zremrangebyscore(key, "-inf", now - self.window)
            pipe.expire(key, int(self.window) + 1)
            pipe.execute()
        self._shared(add, lambda: None)

    @property
    def counter(self):
        now = self.clock()
        return self._shared(
            lambda client: client.zcount(self.key("failures"), f"({now - self.window}", "+inf"),
            lambda: self.memory.count(now, self.window))

    def reset_counter(self):
        """pybreaker resets on every success; inside a time window successes do not erase failures."""

    def clear_failures(self):
        self.memory.failures.clear()
        self._shared(lambda client: client.delete(self.key("failures")), lambda: None)

    # -- half-open successes (pybreaker's success_threshold) -------------------------------
    def increment_success_counter(self):
        self.memory.successes += 1
        self._shared(lambda client: client.incr(self.key("successes")), lambda: None)

    def reset_success_counter(self):
        self.memory.successes = 0
        self._shared(lambda client: client.set(self.key("successes"), 0), lambda: None)

    @property
    def success_counter(self):
        return self._shared(lambda client: int(client.get(self.key("successes")) or 0),
                            lambda: self.memory.successes)

    # -- probe leases -----------------------------------------------------------------------
    def take_probe(self, limit):
        """One of the ``limit`` trial calls of the current open period, across all workers."""
        opened = self.opened_at
        epoch = repr(opened.timestamp()) if opened else "none"

        def take(client):
            key = self.key(f"probes:{epoch}")
            pipe = client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.probe_ttl)
            taken, _ = pipe.execute()
            return taken <= limit
        return self._shared(take, lambda: self.memory.take_probe(epoch, limit))


class GatewayBreaker(pybreaker.CircuitBreaker):
    def __init__(self, service, settings, storage, listeners=()):
        super().__init__(fail_max=settings["failure_threshold"],
                         reset_timeout=settings["reset_timeout"],
                         exclude=[is_not_a_fault], listeners=list(listeners),
                         state_storage=storage, name=service)
        self.storage = storage   # pybreaker keeps its own reference private
        self.service = service
        self.failure_window = settings["failure_window"]
        self.half_open_probes = settings["half_open_probes"]

    def call(self, func, *args, **kwargs):
        # pybreaker holds self._lock for the whole call, serialising concurrent callers.
        # State changes still take the lock (open/half_open/close); the call does not.
        # An open breaker whose reset timeout has passed turns half-open and calls this
        # again, so the probe check below sees that first call too.
        state = self.state
        if state.name == pybreaker.STATE_CLOSED:
            # A success through a closed breaker changes nothing (pybreaker's closed state
            # does nothing on one, WindowedStorage.reset_counter is a no-op, and
            # TransitionRecorder hears failures and transitions only): the call runs as
            # it is, and only a failure goes through pybreaker, which counts it (or
            # lets an excluded one pass) and may open the breaker, as in its own call.
            try:
                return func(*args, **kwargs)
            except BaseException as exc:   # as pybreaker's own call, which sees every exception
                return state.call(raise_again, exc)
        attempted = []

        def attempt(*call_args, **call_kwargs):
            attempted.append(True)
            return func(*call_args, **call_kwargs)
        try:
            if (state.name == pybreaker.STATE_HALF_OPEN
                    and not self.storage.take_probe(self.half_open_probes)):
                raise pybreaker.CircuitBreakerError("Half-open: the probes of this period are in flight")
            return state.call(attempt, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            if not attempted:   # refused, as opposed to the failure that tripped the breaker
                self.count_rejection()
            raise

    def close(self):
        self.storage.clear_failures()
        super().close()

    def retry_after(self, now=None):
        """Seconds until the next probe may run (0 when calls may go through now)."""
        state = self.current_state
        if state == pybreaker.STATE_CLOSED:
            return 0
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 1
        remaining = opened_at.timestamp() + self.reset_timeout - (now or time.time())
        if state == pybreaker.STATE_HALF_OPEN:
            return max(1, int(remaining + 0.999)) if remaining > 0 else 1
        return max(0, int(remaining + 0.999))

    def rejecting(self):
        """Seconds to wait when the breaker would refuse a call now, else None."""
        if self.current_state != pybreaker.STATE_OPEN:
            return None
        wait = self.retry_after()
        if wait <= 0:
            return None
        self.count_rejection()
        return wait

    def count_rejection(self):
        rejections.labels(self.service).inc()

    def describe(self):
        return {"service": self.service, "state": self.current_state,
                "failures_in_window": self.fail_counter,
                "failure_threshold": self.fail_max, "failure_window": self.failure_window,
                "reset_timeout": self.reset_timeout, "half_open_probes": self.half_open_probes,
                "retry_after": self.retry_after()}


def raise_again(exc):
    raise exc


def is_not_a_fault(exc):
    """A provider's 4xx is the caller's problem, not the provider's: it never trips a breaker."""
    return getattr(exc, "counts_as_failure", True) is False


class TransitionRecorder(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        old_name = old_state.name if old_state else "none"
        transitions.labels(cb.name, old_name, new_state.name).inc()
        state_gauge.labels(cb.name).set(STATE_VALUES[new_state.name])
        log.warning("circuit breaker %s: %s -> %s", cb.name, old_name, new_state.name)

    def failure(self, cb, exc):
        failures.labels(cb.name).inc()


class BreakerRegistry:
    """One breaker per upstream, built from the ``circuit_breaker`` policy on first use."""

    def __init__(self, policy_section, redis_client, clock=time.time, services=()):
        self.clock = clock
        self.services = set(services)   # remote-capable business services, listed for operators
        self.defaults = policy_section["defaults"]
        self.overrides = policy_section["services"]
        self.redis = redis_client
        self.breakers = {}
        self.lock = threading.Lock()

    def settings_for(self, service):
        return {**self.defaults, **self.overrides.get(service, {})}

    def get(self, service):
        breaker = self.breakers.get(service)
        if breaker is None:
            with self.lock:
                breaker = self.breakers.get(service)
                if breaker is None:
                    settings = self.settings_for(service)
                    storage = WindowedStorage(service, self.redis, settings["failure_window"],
                                              probe_ttl=max(30, settings["reset_timeout"]),
                                              clock=self.clock)
                    breaker = GatewayBreaker(service, settings, storage, [TransitionRecorder()])
                    self.breakers[service] = breaker
        return breaker

    def known(self):
        return sorted(set(self.overrides) | set(self.breakers) | self.services)


def registry(app=None):
    from .extensions import gateway_state
    return gateway_state(app).breakers


def breaker_for(service, app=None):
    return registry(app).get(service)
