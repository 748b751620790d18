"""Active health checks: GET the health path (or a TCP connect) of every instance.

Every worker process runs a monitor thread (a greenlet under gevent's patching), but
only the worker that wins a Redis lock (SET NX EX, expiring after one interval)
checks in a given interval, and the results go to Redis for all of them. Without
Redis there is one process, which checks on its own. The first round runs as the
monitor starts. An instance nobody has checked yet is checked at once (by the admin API
that registers it, or by the first worker that would route to it) and takes traffic
only once a check has passed.
"""
import logging
import socket
import threading
import uuid

import requests
from redis.exceptions import RedisError

log = logging.getLogger("gateway.discovery")

LOCK_KEY = "gw:registry:health-lock"


def check_instance(instance, path, timeout):
    """Return (healthy, detail) for one instance."""
    if instance.check == "tcp":
        try:
            with socket.create_connection(instance.host_port, timeout=timeout):
                return True, "tcp connect ok"
        except OSError as exc:
            return False, f"tcp connect failed: {exc}"
    try:
        response = requests.get(instance.url + path, timeout=(timeout, timeout),
                                allow_redirects=False)
    except requests.RequestException as exc:
        return False, f"GET {path} failed: {exc.__class__.__name__}"
    return response.status_code < 400, f"GET {path} answered {response.status_code}"


class HealthMonitor:
    def __init__(self, registry, config, redis=None, on_result=None):
        self.registry = registry
        self.on_result = on_result or (lambda service, instance_id, healthy: None)
        self.path = config["path"]
        self.interval = config["interval"]
        self.timeout = config["timeout"]
        self.redis = redis
        self.owner = uuid.uuid4().hex      # names this process in the lock, for debugging
        self.stopped = threading.Event()
        self.thread = None
        self.start_lock = threading.Lock()
        self.checking = set()   # services whose new instances are being checked now

    def check_all(self, services=None):
        """Check every instance of the given (default: all remote) services now."""
        for service in services or self.registry.remote_services():
            self.check(service, self.registry.instances(service))

    def check(self, service, instances):
        """Check ``instances`` of ``service`` now and store the results for every worker."""
        for instance in instances:
            healthy, detail = check_instance(instance, self.path, self.timeout)
            self.registry.record_health(service, instance.id, healthy, detail)
            self.on_result(service, instance.id, healthy)
            if not healthy:
                log.warning("health check: %s %s unhealthy (%s)", service, instance.url, detail)

    def check_soon(self, service, instances):
        """Check ``instances`` in the background, once at a time per service."""
        with self.start_lock:
            if service in self.checking:
                return
            self.checking.add(service)

        def run():
            try:
                self.check(service, instances)
            finally:
                self.checking.discard(service)
        threading.Thread(target=run, name="gateway-health-now", daemon=True).start()

    def my_turn(self):
        """True for the one worker that checks in this interval."""
        if self.redis is None:
            return True
        try:
            return bool(self.redis.set(LOCK_KEY, self.owner, nx=True, ex=self.interval))
        except RedisError as exc:
            log.warning("health check: Redis unavailable, checking from this worker: %s", exc)
            return True

    def run(self):
        first = True
        while first or not self.stopped.wait(self.interval):
            first = False
            try:
                if self.registry.remote_services() and self.my_turn():
                    self.check_all()
            except Exception:  # the monitor must outlive any one bad round
                log.exception("health check round failed")

    def ensure_started(self):
        """Start the monitor on first need; a process with only local services never runs it."""
        if self.thread is not None:
            return
        with self.start_lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="gateway-health", daemon=True)
                self.thread.start()

    def stop(self):
        self.stopped.set()
