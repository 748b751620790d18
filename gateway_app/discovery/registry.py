"""The service registry: which instances serve a remote service, and how healthy they are.

A service with no instances is local (its blueprint answers). Instances come from
conf/gateway.yaml (fixed for the life of the process) and from the admin API (stored
in Redis so every worker sees them; in process memory without Redis). Health results
are stored next to them, written by the active checks and by the proxy's passive
checks. An instance takes traffic only once a check has passed: one nobody has checked
yet is pending.

Each worker routes from its own copy of a service's instances and their health (a
``ServiceView``). A version per service, incremented in Redis with every change (an
instance added or removed, an instance turning healthy or unhealthy), is read in the
round trip every proxied request makes anyway (``ServiceDiscoveryStage.call_ahead``);
the copy is read again only when the version moved. So a change made in one worker
is seen by the next request of every worker, and steady load reads nothing more.
"""
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field

from redis.exceptions import RedisError

log = logging.getLogger("gateway.discovery")

KEY_PREFIX = "gw:registry"
HTTP_URL = re.compile(r"^(https?)://([^/\s:]+|\[[0-9a-fA-F:]+\])(:\d+)?/?$")
HOST_PORT = re.compile(r"^([^/\s:]+):(\d+)$")
# How long a worker trusts its copy of a service it believes local (its requests do not
# read the version) before asking Redis again
LIST_REFRESH_SECONDS = 1.0


UNREAD = object()   # a request that read no version


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


@dataclass(frozen=True)
class ServiceView:
    """One worker's copy of a service's instances and their health, as of ``version``."""
    version: object                  # the service's registry version it was read at
    instances: tuple
    health: dict                     # instance id -> Health, for the instances checked
    fetched_at: float
    start: int = 0                   # the shared round-robin counter when it was read
    routable: tuple = field(init=False)
    pending: tuple = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "routable", tuple(
            i for i in self.instances if i.id in self.health and self.health[i.id].healthy))
        object.__setattr__(self, "pending", tuple(i for i in self.instances if i.id not in self.health))


class Registry:
    """Instances and health per service; shared through Redis when one is configured."""

    def __init__(self, config, redis=None, clock=time.monotonic):
        self.redis = redis
        self.clock = clock
        self.versions = {name: spec["version"] for name, spec in config["services"].items()}
        self.configured = {name: [make_instance(address, "config") for address in spec["instances"]]
                           for name, spec in config["services"].items()}
        self.lock = threading.Lock()
        self.local_admin = {name: {} for name in self.versions}     # used without Redis
        self.local_health = {name: {} for name in self.versions}
        self.local_counters = {name: 0 for name in self.versions}
        self.local_versions = {name: 0 for name in self.versions}
        self.views = {}                                              # service -> ServiceView
        self.refreshing = set()                                      # services being read again

    def key(self, service, what):
        return f"{KEY_PREFIX}:{{{service}}}:{what}"   # one hash tag per service (docs/redis-keys.md)

    def version_key(self, service):
        return self.key(service, "version")

    def knows(self, service):
        return service in self.versions

    # -- the worker's copy ----------------------------------------------------------

    def view(self, service, version=UNREAD):
        """This worker's copy of ``service``, read again when ``version`` (the service's
        version as a request just read it) differs from the copy's, or, when the request
        read no version, when the copy is older than LIST_REFRESH_SECONDS."""
        current = self.views.get(service)
        if current is not None and self.is_current(current, service, version):
            return current
        if current is not None and version is UNREAD and service in self.refreshing:
            # aged out while another request of this worker reads it again: one read a
            # second, not one per request arriving during that read
            return current
        return self.refresh(service)

    def is_current(self, view, service, version):
        if self.redis is None:
            return view.version == self.local_versions[service]
        if version is not UNREAD:
            return version == view.version
        return self.clock() - view.fetched_at < LIST_REFRESH_SECONDS

    def refresh(self, service):
        if self.redis is None:
            with self.lock:
                view = ServiceView(self.local_versions[service],
                                   tuple(self.configured[service]) + tuple(self.local_admin[service].values()),
                                   dict(self.local_health[service]), self.clock())
        else:
            self.refreshing.add(service)
            try:
                view = self.read_view(service)
            except RedisError as exc:
                # keep routing with what this worker saw last rather than dropping the service
                log.warning("registry: Redis unavailable, using the last known instances: %s", exc)
                known = self.views.get(service)
                if known is None:   # configured instances, checked by nobody we can ask
                    known = self.views[service] = ServiceView(
                        UNREAD, tuple(self.configured[service]),
                        {i.id: Health(True, 0.0, "assumed: Redis unavailable") for i in self.configured[service]},
                        self.clock())
                return known
            finally:
                self.refreshing.discard(service)
        self.views[service] = view
        return view

    def read_view(self, service):
        """Version, instances, health and a round-robin start, in one round trip."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.version_key(service))
        pipe.hgetall(self.key(service, "instances"))
        pipe.hgetall(self.key(service, "health"))
        pipe.incr(self.key(service, "rr"))
        version, stored, health, start = pipe.execute()
        admin = sorted((make_instance(address.decode(), "admin") for address in stored.values()),
                       key=lambda instance: instance.address)
        return ServiceView(version, tuple(self.configured[service]) + tuple(admin),
                           {key.decode(): Health.from_json(value) for key, value in health.items()},
                           self.clock(), int(start))

    def changed(self, service, pipe=None):
        """Every worker's copy of ``service`` is out of date: its version moves."""
        if self.redis is None:
            self.local_versions[service] += 1
        elif pipe is not None:
            pipe.incr(self.version_key(service))
        else:
            self.redis.incr(self.version_key(service))

    # -- instances ------------------------------------------------------------------

    def instances(self, service):
        return list(self.view(service).instances)

    def is_remote(self, service, version=UNREAD):
        return self.knows(service) and bool(self.view(service, version).instances)

    def believed_remote(self, service):
        """Whether this worker's copy says ``service`` is remote; a copy saying so is not
        read again by age (the request that follows reads the version), one saying local
        is, once a second."""
        known = self.views.get(service)
        if known is not None and known.instances:
            return True
        return self.is_remote(service)

    def remote_services(self):
        return [service for service in self.versions if self.is_remote(service)]

    def add(self, service, address):
        """Register an instance; returns (instance, created). It takes no traffic until a
        health check has passed (the admin API checks it at once)."""
        instance = make_instance(address, "admin")
        configured = [i for i in self.configured[service] if i.id == instance.id]
        if configured:
            return configured[0], False
        if self.redis is None:
            with self.lock:
                created = instance.id not in self.local_admin[service]
                self.local_admin[service][instance.id] = instance
                self.changed(service)
        else:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.key(service, "instances"), instance.id, instance.address)
            self.changed(service, pipe)
            created = bool(pipe.execute()[0])
        self.views.pop(service, None)
        return instance, created

    def remove(self, service, instance_id):
        """Unregister an admin-added instance; False when there is no such instance."""
        if self.redis is None:
            with self.lock:
                removed = self.local_admin[service].pop(instance_id, None) is not None
                self.local_health[service].pop(instance_id, None)
                self.changed(service)
        else:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(self.key(service, "instances"), instance_id)
            pipe.hdel(self.key(service, "health"), instance_id)
            self.changed(service, pipe)
            removed = bool(pipe.execute()[0])
        self.views.pop(service, None)
        return removed

    # -- health ---------------------------------------------------------------------

    def health(self, service):
        """{instance id: Health} for the instances checked so far, as stored now."""
        if self.redis is None:
            return dict(self.local_health[service])
        try:
            stored = self.redis.hgetall(self.key(service, "health"))
        except RedisError as exc:
            log.warning("registry: Redis unavailable, using this worker's copy of the health: %s", exc)
            known = self.views.get(service)
            return dict(known.health) if known else {}
        return {key.decode(): Health.from_json(value) for key, value in stored.items()}

    def record_health(self, service, instance_id, healthy, detail):
        """Store a check's result; True when it changed whether the instance takes traffic."""
        result = Health(healthy=healthy, checked_at=time.time(), detail=detail)
        if self.redis is None:
            with self.lock:
                before = self.local_health[service].get(instance_id)
                self.local_health[service][instance_id] = result
                flipped = before is None or before.healthy != healthy
                if flipped:
                    self.changed(service)
            return flipped
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hget(self.key(service, "health"), instance_id)
            pipe.hset(self.key(service, "health"), instance_id, result.to_json())
            before, _ = pipe.execute()
            flipped = before is None or Health.from_json(before).healthy != healthy
            if flipped:
                self.changed(service)
        except RedisError as exc:
            log.warning("registry: cannot store the health of %s/%s: %s", service, instance_id, exc)
            return False
        return flipped

    def healthy_instances(self, service):
        return list(self.view(service).routable)

    # -- round robin ----------------------------------------------------------------

    def next_turn(self, service):
        """The shared counter (Redis INCR): each worker starts its rotation where it stands
        when it reads its copy, so workers do not all begin with the same instance."""
        if self.redis is not None:
            try:
                return int(self.redis.incr(self.key(service, "rr")))
            except RedisError as exc:
                log.warning("registry: Redis unavailable, rotating per process: %s", exc)
        with self.lock:
            self.local_counters[service] += 1
            return self.local_counters[service]
