"""Circuit breakers: time-window counting, half-open probes across workers, shared state
through Redis, concurrency through one breaker, per-process fallback when Redis is down."""
import os
import subprocess
import sys
import threading
import time

import pybreaker
import pytest
from prometheus_client import REGISTRY

from gateway_app.breakers import BreakerRegistry
from gateway_app.integrations.http import ProviderFault, ProviderRejected
from gateway_app.redis_store import make_redis
from tests.support.servers import ROOT

POLICY = {"defaults": {"failure_threshold": 5, "failure_window": 300, "reset_timeout": 60,
                       "half_open_probes": 1},
          "services": {"stripe": {}, "quick": {"reset_timeout": 1}}}


class Clock:
    def __init__(self, start=1_800_000_000.0):
        self.now = start

    def __call__(self):
        return self.now


def fail(service="stripe"):
    raise ProviderFault(service, f"{service} answered 503", status=503)


def reject():
    raise ProviderRejected("stripe", 404, {"error": {"message": "No such invoice"}})


def call_failing(breaker, times=1, func=fail):
    outcomes = []
    for _ in range(times):
        try:
            breaker.call(func)
        except pybreaker.CircuitBreakerError:
            outcomes.append("tripped")
        except (ProviderFault, ProviderRejected):
            outcomes.append("failed")
    return outcomes


@pytest.fixture
def shared_redis(redis_url, redis_client):
    client = make_redis(redis_url)
    yield client
    client.close()


@pytest.fixture(params=["redis", "in-process"])
def registry_and_clock(request, shared_redis):
    clock = Clock()
    redis_client = shared_redis if request.param == "redis" else None
    return BreakerRegistry(POLICY, redis_client, clock=clock), clock


def test_five_failures_spread_inside_the_window_open_the_breaker(registry_and_clock):
    registry, clock = registry_and_clock
    breaker = registry.get("stripe")
    for _ in range(4):
        assert call_failing(breaker) == ["failed"]
        clock.now += 70          # 4 x 70 s = 280 s: all five stay within 300 s
    assert breaker.current_state == "closed"
    assert call_failing(breaker) == ["tripped"]
    assert breaker.current_state == "open"
    assert 55 <= breaker.retry_after() <= 60


def test_failures_older_than_the_window_do_not_count(registry_and_clock):
    registry, clock = registry_and_clock
    breaker = registry.get("stripe")
    call_failing(breaker, 3)
    clock.now += 301             # those three leave the window
    assert call_failing(breaker, 4) == ["failed"] * 4
    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 4
    assert call_failing(breaker) == ["tripped"]


def test_successes_do_not_erase_failures_in_the_window(registry_and_clock):
    """pybreaker counts consecutive failures; the seed counts failures within 5 minutes."""
    registry, _clock = registry_and_clock
    breaker = registry.get("stripe")
    for _ in range(4):
        call_failing(breaker)
        assert breaker.call(lambda: "ok") == "ok"
    assert breaker.current_state == "closed"
    assert call_failing(breaker) == ["tripped"]


def test_provider_rejections_are_not_failures(registry_and_clock):
    registry, _clock = registry_and_clock
    breaker = registry.get("stripe")
    assert call_failing(breaker, 10, func=reject) == ["failed"] * 10
    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 0


def test_open_refuses_then_half_open_probe_success_closes(registry_and_clock):
    registry, _clock = registry_and_clock
    breaker = registry.get("quick")
    call_failing(breaker, 5, func=lambda: fail("quick"))
    assert breaker.current_state == "open"
    calls = []
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(lambda: calls.append(1))
    assert calls == []                      # refused without calling
    time.sleep(1.05)                        # reset_timeout of "quick" is 1 s
    assert breaker.call(lambda: "probe ok") == "probe ok"
    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 0


def test_failed_probe_reopens_for_another_reset_timeout(registry_and_clock):
    registry, _clock = registry_and_clock
    breaker = registry.get("quick")
    call_failing(breaker, 5, func=lambda: fail("quick"))
    time.sleep(1.05)
    assert call_failing(breaker, func=lambda: fail("quick")) == ["tripped"]
    assert breaker.current_state == "open"
    assert breaker.rejecting() == 1


def test_half_open_admits_one_probe_across_two_workers(shared_redis):
    """Two registries on one Redis stand for two gunicorn workers with their own objects."""
    worker_a = BreakerRegistry(POLICY, shared_redis).get("quick")
    worker_b = BreakerRegistry(POLICY, shared_redis).get("quick")
    call_failing(worker_a, 5, func=lambda: fail("quick"))
    assert worker_b.current_state == "open"
    time.sleep(1.05)

    probe_running, release_probe = threading.Event(), threading.Event()

    def slow_probe():
        probe_running.set()
        release_probe.wait(5)
        return "healthy"

    results = {}
    probe = threading.Thread(target=lambda: results.setdefault("a", worker_a.call(slow_probe)))
    probe.start()
    assert probe_running.wait(5)
    calls = []
    with pytest.raises(pybreaker.CircuitBreakerError):   # the only probe is in flight in worker A
        worker_b.call(lambda: calls.append(1))
    assert calls == []
    release_probe.set()
    probe.join(5)
    assert results == {"a": "healthy"}
    assert worker_b.current_state == "closed"
    assert worker_b.call(lambda: "served") == "served"


def test_state_is_shared_with_another_process(shared_redis, redis_url):
    script = (
        "import sys\n"
        "from gateway_app.breakers import BreakerRegistry\n"
        "from gateway_app.integrations.http import ProviderFault\n"
        "from gateway_app.redis_store import make_redis\n"
        f"policy = {POLICY!r}\n"
        "breaker = BreakerRegistry(policy, make_redis(sys.argv[1])).get('stripe')\n"
        "def fail(): raise ProviderFault('stripe', 'down', 503)\n"
        "for _ in range(5):\n"
        "    try: breaker.call(fail)\n"
        "    except Exception: pass\n"
        "print(breaker.current_state)\n")
    here = BreakerRegistry(POLICY, shared_redis).get("stripe")
    assert here.current_state == "closed"
    out = subprocess.run([sys.executable, "-c", script, redis_url], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.stdout.strip() == "open", out.stderr
    assert here.current_state == "open"
    with pytest.raises(pybreaker.CircuitBreakerError):
        here.call(lambda: "not called")


def test_concurrent_calls_through_one_breaker_run_concurrently(shared_redis):
    """pybreaker's call() holds a lock for the whole call; ours must not serialise callers.

    Every call waits at a barrier for all the others: serialised calls could never meet there.
    """
    breaker = BreakerRegistry(POLICY, shared_redis).get("stripe")
    callers = 5
    barrier = threading.Barrier(callers, timeout=5)
    results, errors = [], []

    def meet():
        barrier.wait()
        return "met"

    def run():
        try:
            results.append(breaker.call(meet))
        except Exception as exc:  # BrokenBarrierError when calls are serialised
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert results == ["met"] * callers


def test_redis_down_falls_back_to_per_process_state(private_redis):
    client = make_redis(private_redis.url)
    breaker = BreakerRegistry(POLICY, client).get("stripe")
    call_failing(breaker, 2)
    assert breaker.fail_counter == 2
    private_redis.stop()
    assert breaker.current_state == "closed"
    assert breaker.call(lambda: "still serving") == "still serving"
    assert call_failing(breaker, 5) == ["failed", "failed", "tripped", "tripped", "tripped"]
    assert breaker.current_state == "open"            # remembered in this process
    assert breaker.describe()["state"] == "open"
    client.close()


def test_transitions_are_counted_in_prometheus(shared_redis):
    def count(to_state):
        return REGISTRY.get_sample_value("gateway_breaker_transitions_total",
                                         {"service": "quick", "from_state": "closed",
                                          "to_state": to_state}) or 0
    before = count("open")
    breaker = BreakerRegistry(POLICY, shared_redis).get("quick")
    call_failing(breaker, 5, func=lambda: fail("quick"))
    assert count("open") == before + 1
    assert REGISTRY.get_sample_value("gateway_breaker_state", {"service": "quick"}) == 2


def test_shared_state_resumes_when_redis_returns(private_redis, monkeypatch):
    monkeypatch.setattr("gateway_app.breakers.REDIS_RETRY_AFTER", 0.0)
    client = make_redis(private_redis.url)
    breaker = BreakerRegistry(POLICY, client).get("stripe")
    private_redis.stop()
    call_failing(breaker, 5)
    assert breaker.current_state == "open"            # per process while Redis is down
    private_redis.start()                              # same port, empty data
    other_worker = BreakerRegistry(POLICY, make_redis(private_redis.url)).get("stripe")
    assert other_worker.current_state == "closed"
    assert breaker.current_state == "closed"           # back on the shared state
    other_worker.open()
    assert breaker.current_state == "open"
    client.close()
