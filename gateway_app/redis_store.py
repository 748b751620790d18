"""The shared Redis client: blocking pool, short timeouts, no hidden retries (DESIGN.md)."""
import ssl

import redis
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
