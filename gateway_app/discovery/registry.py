"""The service registry: which instances serve a remote service, and how healthy they are.

A service with no instances is local (its blueprint answers). Instances come from
conf/gateway.yaml (fixed for the life of the process) and from the admin API (stored
in Redis so every worker sees them; in process memory without Redis). Health results
are stored next to them, written by the active checks and by the proxy's passive
checks. An instance nobody has checked yet counts as healthy, so a freshly registered
instance takes traffic at once; a failed request marks it unhealthy immediately.
"""
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass

from redis.exceptions import RedisError

log = logging.getLogger("gateway.discovery")

KEY_PREFIX = "gw:registry"
HTTP_URL = re.compile(r"^(https?)://([^/\s:]+|\[[0-9a-fA-F:]+\])(:\d+)?/?$")
HOST_PORT = re.compile(r"^([^/\s:]+):(\d+)$")
# How long a worker trusts its copy of the instance lists before asking Redis again;
# registrations made through this worker are visible at once.
LIST_REFRESH_SECONDS = 1.0


class InvalidInstance(ValueError):
    """The address is neither ``http(s)://host[:port]`` nor ``host:port``."""


@dataclass(frozen=True)
class Instance:
    id: str
    address: str        # as registered: http(s)://host:port, or host:port
    url: str            # base URL requests are sent to
    check: str          # "http" (GET the health path) or "tcp" (connect only)
    source: str         # "config" or "admin"

    @property
    def host_port(self):
        netloc = self.url.split("://", 1)[1]
        host, _, port = netloc.rpartition(":")
        if not host:
            return netloc, 443 if self.url.startswith("https") else 80
        return host.strip("[]"), int(port)


def make_instance(address, source):
    """``http(s)://host:port`` is checked over HTTP; a bare ``host:port`` by a TCP connect."""
    address = address.strip()
    if HTTP_URL.match(address):
        address = address.rstrip("/")
        url, check = address, "http"
    elif HOST_PORT.match(address):
        url, check = f"http://{address}", "tcp"
    else:
        raise InvalidInstance(f"not an instance address: {address!r} "
                              "(expected http(s)://host:port or host:port)")
    instance_id = hashlib.sha1(address.encode()).hexdigest()[:12]
    return Instance(id=instance_id, address=address, url=url, check=check, source=source)


@dataclass
class Health:
    healthy: bool
    checked_at: float
    detail: str

    def to_json(self):
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


class Registry:
    """Instances and health per service; shared through Redis when one is configured."""

    def __init__(self, config, redis=None):
        self.redis = redis
        self.versions = {name: spec["version"] for name, spec in config["services"].items()}
        self.configured = {name: [make_instance(address, "config") for address in spec["instances"]]
                           for name, spec in config["services"].items()}
        self.lock = threading.Lock()
        self.local_admin = {name: {} for name in self.versions}     # used without Redis
        self.local_health = {name: {} for name in self.versions}
        self.local_counters = {name: 0 for name in self.versions}
        self.cached_lists = {}                                       # service -> (fetched_at, list)

    def key(self, service, what):
        return f"{KEY_PREFIX}:{{{service}}}:{what}"   # one hash tag per service (docs/redis-keys.md)

    def knows(self, service):
        return service in self.versions

    # -- instances ------------------------------------------------------------------

    def instances(self, service):
        fetched = self.cached_lists.get(service)
        if fetched and time.monotonic() - fetched[0] < LIST_REFRESH_SECONDS:
            return fetched[1]
        listed = self.configured[service] + self.admin_instances(service)
        self.cached_lists[service] = (time.monotonic(), listed)
        return listed

    def admin_instances(self, service):
        if self.redis is None:
            return list(self.local_admin[service].values())
        try:
            stored = self.redis.hgetall(self.key(service, "instances"))
        except RedisError as exc:
            # keep routing with what this worker saw last rather than dropping the service
            log.warning("registry: Redis unavailable, using the last known instances: %s", exc)
            fetched = self.cached_lists.get(service)
            return [i for i in fetched[1] if i.source == "admin"] if fetched else []
        return sorted((make_instance(address.decode(), "admin") for address in stored.values()),
                      key=lambda instance: instance.address)

    def is_remote(self, service):
        return self.knows(service) and bool(self.instances(service))

    def remote_services(self):
        return [service for service in self.versions if self.is_remote(service)]

    def add(self, service, address):
        """Register an instance; returns (instance, created)."""
        instance = make_instance(address, "admin")
        configured = [i for i in self.configured[service] if i.id == instance.id]
        if configured:
            return configured[0], False
        if self.redis is None:
            with self.lock:
                created = instance.id not in self.local_admin[service]
                self.local_admin[service][instance.id] = instance
        else:
            created = bool(self.redis.hset(self.key(service, "instances"), instance.id, instance.address))
        self.cached_lists.pop(service, None)
        return instance, created

    def remove(self, service, instance_id):
        """Unregister an admin-added instance; False when there is no such instance."""
        if self.redis is None:
            with self.lock:
                removed = self.local_admin[service].pop(instance_id, None) is not None
                self.local_health[service].pop(instance_id, None)
        else:
            pipe = self.redis.pipeline()
            pipe.hdel(self.key(service, "instances"), instance_id)
            pipe.hdel(self.key(service, "health"), instance_id)
            removed = bool(pipe.execute()[0])
        self.cached_lists.pop(service, None)
        return removed

    # -- health ---------------------------------------------------------------------

    def health(self, service):
        """{instance id: Health} for the instances checked so far."""
        if self.redis is None:
            return dict(self.local_health[service])
        try:
            stored = self.redis.hgetall(self.key(service, "health"))
        except RedisError as exc:
            log.warning("registry: Redis unavailable, treating instances as healthy: %s", exc)
            return {}
        return {key.decode(): Health.from_json(value) for key, value in stored.items()}

    def record_health(self, service, instance_id, healthy, detail):
        result = Health(healthy=healthy, checked_at=time.time(), detail=detail)
        if self.redis is None:
            self.local_health[service][instance_id] = result
            return
        try:
            self.redis.hset(self.key(service, "health"), instance_id, result.to_json())
        except RedisError as exc:
            log.warning("registry: cannot store the health of %s/%s: %s", service, instance_id, exc)

    def healthy_instances(self, service):
        health = self.health(service)
        return [instance for instance in self.instances(service)
                if health.get(instance.id) is None or health[instance.id].healthy]

    # -- round robin ----------------------------------------------------------------

    def next_turn(self, service):
        """A counter shared by every worker (Redis INCR), so the rotation is global."""
        if self.redis is not None:
            try:
                return int(self.redis.incr(self.key(service, "rr")))
            except RedisError as exc:
                log.warning("registry: Redis unavailable, rotating per process: %s", exc)
        with self.lock:
            self.local_counters[service] += 1
            return self.local_counters[service]
