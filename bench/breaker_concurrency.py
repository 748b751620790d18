"""N concurrent slow calls through one breaker: pybreaker's own call() versus ours.

    python bench/breaker_concurrency.py [REDIS_URL]

pybreaker holds the breaker's lock for the whole call, so N calls of 0.2 s take N x 0.2 s;
GatewayBreaker.call does not, so they take about 0.2 s.
"""
import sys
import threading
import time

import pybreaker

from gateway_app.breakers import BreakerRegistry
from gateway_app.redis_store import make_redis

POLICY = {"defaults": {"failure_threshold": 5, "failure_window": 300, "reset_timeout": 60,
                       "half_open_probes": 1}, "services": {}}
CALLS, DELAY = 10, 0.2


def timed(call):
    threads = [threading.Thread(target=call, args=(time.sleep, DELAY)) for _ in range(CALLS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main():
    redis_client = make_redis(sys.argv[1]) if len(sys.argv) > 1 else None
    ours = BreakerRegistry(POLICY, redis_client).get("bench")
    print(f"{CALLS} calls x {DELAY}s, concurrently, through one breaker")
    print(f"  pybreaker.CircuitBreaker.call: {timed(pybreaker.CircuitBreaker().call):.2f}s")
    print(f"  GatewayBreaker.call ({'Redis' if redis_client else 'in-process'}): {timed(ours.call):.2f}s")


if __name__ == "__main__":
    main()
