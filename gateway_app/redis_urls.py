"""What ``REDIS_URL`` names: one server, a Sentinel-managed master, or a Cluster.

The schemes are those of the ``limits`` storage URIs flask-limiter documents, plus the
TLS variants redis-py supports:

- ``redis://`` / ``rediss://`` / ``unix://``: one server, as redis-py's ``from_url`` reads it;
- ``redis+sentinel://[[user:]password@]host:port[,host:port]/service_name[/db]``
  (``rediss+sentinel://``: TLS to the master and replicas; the sentinels are asked in
  plain text, as redis-py's Sentinel does);
- ``redis+cluster://[[user:]password@]host:port[,host:port]`` (``rediss+cluster://``).

A bare credential before ``@`` is a password (``redis+sentinel://secret@host:26379/x``),
as in limits' examples; ``user:password@`` gives both.
"""
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SINGLE, SENTINEL, CLUSTER = "single", "sentinel", "cluster"
SCHEMES = {
    "redis": (SINGLE, False), "rediss": (SINGLE, True), "unix": (SINGLE, False),
    "redis+sentinel": (SENTINEL, False), "rediss+sentinel": (SENTINEL, True),
    "redis+cluster": (CLUSTER, False), "rediss+cluster": (CLUSTER, True),
}


class RedisUrlError(ValueError):
    """REDIS_URL does not name a Redis the gateway can use."""


@dataclass(frozen=True)
class RedisLocation:
    topology: str                  # single | sentinel | cluster
    tls: bool
    url: str                       # as given (redis-py reads it for a single server)
    nodes: tuple = ()              # (host, port) of the sentinels or the cluster's seed nodes
    service_name: str | None = None
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def parse_redis_url(url):
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise RedisUrlError(f"REDIS_URL scheme {scheme or url!r} is not one of {', '.join(SCHEMES)}")
    topology, tls = SCHEMES[scheme]
    if topology == SINGLE:
        return RedisLocation(SINGLE, tls, url)
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(credentials)
    nodes = tuple(_node(text, url) for text in hosts.split(",") if text.strip())
    if not nodes:
        raise RedisUrlError(f"REDIS_URL {_redacted(url)} names no host:port")
    path = [segment for segment in parts.path.split("/") if segment]
    if topology == CLUSTER:
        if path:
            raise RedisUrlError("a Redis Cluster has only database 0: REDIS_URL takes no path")
        return RedisLocation(CLUSTER, tls, url, nodes, username=username, password=password)
    if not path or len(path) > 2:
        raise RedisUrlError(f"REDIS_URL {_redacted(url)} must end with /service_name or /service_name/db")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise RedisUrlError(f"REDIS_URL database {path[1]!r} is not a number")
        db = int(path[1])
    return RedisLocation(SENTINEL, tls, url, nodes, unquote(path[0]), db, username, password)


def _credentials(text):
    if not text:
        return None, None
    if ":" not in text:
        return None, unquote(text)
    username, password = text.split(":", 1)
    return unquote(username) or None, unquote(password) or None


def _node(text, url):
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")   # [::1]:26379
    if not host or not port.isdigit():
        raise RedisUrlError(f"REDIS_URL {_redacted(url)}: {text.strip()!r} is not host:port")
    return host, int(port)


def _redacted(url):
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
