"""Settings read from the environment, exactly as docs/contract.md section 1 lists them."""
import math
import os
import secrets
import urllib.parse
from collections import Counter

PROVIDERS = ("calcom", "retell", "stripe", "sendgrid")
PROVIDER_DEFAULT_URLS = {
    "calcom": "https://api.cal.com/v2",
    "retell": "https://api.retellai.com",
    "stripe": "https://api.stripe.com/v1",
    "sendgrid": "https://api.sendgrid.com",
}
DEFAULT_SQLITE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "var", "gateway.db")


class SettingsError(Exception):
    """The environment cannot run the gateway (for example no SECRET_KEY in production)."""


# A production secret must be long and look random: anyone who guesses SECRET_KEY forges
# sessions and tokens for every user, and GATEWAY_ADMIN_TOKEN opens the operator API.
MIN_SECRET_LENGTH = 32
# Shannon entropy of the secret's own character frequencies, in bits per character: a
# random hex string of 32 scores about 3.5 (never under 2.75 in 200,000 draws), base64
# about 5, a phrase of words about 4, while "aaaa..." scores 0 and a pattern of up to
# five characters repeated ("abab...", "12345123...") at most 2.3.
MIN_SECRET_BITS_PER_CHAR = 2.5
# and at least this many distinct characters (32 random hex digits show 9 or fewer once
# in 10,000 draws, 7 or fewer about never)
MIN_SECRET_DISTINCT = 8


def secret_weakness(value):
    """Why ``value`` is too weak to be a production secret, or None when it is acceptable."""
    if len(value) < MIN_SECRET_LENGTH:
        return f"is {len(value)} characters long; at least {MIN_SECRET_LENGTH} are required"
    counts = Counter(value)
    bits = max(0.0, -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values()))
    if bits < MIN_SECRET_BITS_PER_CHAR or len(counts) < MIN_SECRET_DISTINCT:
        return (f"is too predictable ({len(counts)} distinct characters, {bits:.1f} bits of "
                f"entropy per character; at least {MIN_SECRET_DISTINCT} distinct and "
                f"{MIN_SECRET_BITS_PER_CHAR:.1f} bits are required)")
    return None


def check_production_secrets(env):
    """Refuse weak SECRET_KEY / GATEWAY_ADMIN_TOKEN values naming the variable (never its value)."""
    for name in ("SECRET_KEY", "GATEWAY_ADMIN_TOKEN"):
        value = env.get(name)
        weakness = secret_weakness(value) if value else None
        if weakness:
            raise SettingsError(f"{name} {weakness} in production; generate one with "
                                f"python -c 'import secrets; print(secrets.token_urlsafe(48))'")


def normalise_database_url(url):
    """Platform add-ons hand out ``mysql://`` URLs; PyMySQL is the driver we use."""
    for scheme in ("mysql://", "mariadb://"):
        if url.startswith(scheme):
            return "mysql+pymysql://" + url[len(scheme):]
    if url.startswith("mariadb+pymysql://"):
        return "mysql+pymysql://" + url[len("mariadb+pymysql://"):]
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://"):]
    return url


def database_url(env):
    for name in ("DATABASE_URL", "JAWSDB_URL", "JAWSDB_MARIA_URL", "CLEARDB_DATABASE_URL"):
        if env.get(name):
            return normalise_database_url(env[name])
    return "sqlite:///" + DEFAULT_SQLITE_PATH


DEFAULT_PORTS = {"http": 80, "https": 443}


def cors_origin(text):
    """One GATEWAY_CORS_ORIGINS entry as browsers serialise an Origin header (lower-case
    scheme and host, no default port, no path), so it can be compared as a string; ``*``
    stays as it is."""
    if text == "*":
        return text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        parts = port = None
    if (parts is None or parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
            or parts.password):
        raise SettingsError(f"GATEWAY_CORS_ORIGINS: {text!r} is not an origin "
                            "(scheme://host[:port], e.g. https://portal.example.com)")
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:   # urlsplit drops an IPv6 literal's brackets
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def cors_origins(value):
    """The comma-separated GATEWAY_CORS_ORIGINS as a tuple of origins (empty: no CORS)."""
    found = []
    for entry in (value or "").split(","):
        entry = entry.strip()
        if entry and cors_origin(entry) not in found:
            found.append(cors_origin(entry))
    return tuple(found)


DEFAULT_FILE_STORAGE_DIR = os.path.join(os.path.dirname(DEFAULT_SQLITE_PATH), "files")


def file_storage_url(env):
    """FILE_STORAGE_URL; else the Bucketeer add-on's bucket; else FILE_STORAGE_DIR (its
    former name, a directory); else var/files."""
    from .files import StorageUrlError, parse_storage_url
    url = env.get("FILE_STORAGE_URL")
    if not url and env.get("BUCKETEER_BUCKET_NAME"):
        url = f"s3://{env['BUCKETEER_BUCKET_NAME']}"
    if not url:
        url = "file://" + os.path.abspath(env.get("FILE_STORAGE_DIR") or DEFAULT_FILE_STORAGE_DIR)
    try:
        parse_storage_url(url)
    except StorageUrlError as exc:
        raise SettingsError(str(exc)) from None
    return url


def s3_options(env):
    """Where and as whom the s3:// store connects: the usual AWS_* variables, else the
    Bucketeer add-on's BUCKETEER_*; an endpoint URL for MinIO or any other S3-compatible
    server. Unset credentials leave boto3 its own chain (instance role, ~/.aws)."""
    def first(*names):
        return next((env[name] for name in names if env.get(name)), None)
    return {
        "endpoint_url": first("FILE_STORAGE_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        "region": first("AWS_REGION", "AWS_DEFAULT_REGION", "BUCKETEER_AWS_REGION") or "us-east-1",
        "access_key_id": first("AWS_ACCESS_KEY_ID", "BUCKETEER_AWS_ACCESS_KEY_ID"),
        "secret_access_key": first("AWS_SECRET_ACCESS_KEY", "BUCKETEER_AWS_SECRET_ACCESS_KEY"),
    }


def file_downloads(env):
    """stream (the gateway relays the bytes) or redirect (a presigned URL, s3:// only)."""
    value = (env.get("FILE_STORAGE_DOWNLOADS") or "stream").strip().lower()
    if value not in ("stream", "redirect"):
        raise SettingsError(f"FILE_STORAGE_DOWNLOADS must be stream or redirect, not {value!r}")
    return value


def _env_flag(env, name, default=False):
    value = env.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def from_environment(env=None):
    """Build the Flask config mapping from environment variables."""
    env = os.environ if env is None else env
    production = env.get("GATEWAY_ENV", env.get("FLASK_ENV", "development")) == "production" \
        or bool(env.get("DYNO"))
    secret = env.get("SECRET_KEY")
    if not secret:
        if production:
            raise SettingsError("SECRET_KEY must be set in production")
        secret = secrets.token_hex(32)
    if production:
        check_production_secrets(env)
    config = {
        "ENV_PRODUCTION": production,
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URL": database_url(env),
        "REDIS_URL": env.get("REDIS_TLS_URL") or env.get("REDIS_URL") or None,
        "REDIS_SOCKET_TIMEOUT": float(env.get("REDIS_SOCKET_TIMEOUT", "0.25")),
        "REDIS_POOL_SIZE": int(env.get("REDIS_POOL_SIZE", "200")),
        # a gevent worker's concurrent connections (conf/gunicorn.conf.py reads it too): the
        # size of each pool of connections to a remote instance
        "WORKER_CONNECTIONS": int(env.get("GATEWAY_WORKER_CONNECTIONS", "200")),
        # after a Redis call times out, every use skips Redis this long (redis_store.RedisBreaker)
        "REDIS_RETRY_AFTER": float(env.get("REDIS_RETRY_AFTER", "1.0")),
        "GATEWAY_ADMIN_TOKEN": env.get("GATEWAY_ADMIN_TOKEN") or None,
        "GATEWAY_CONFIG": env.get("GATEWAY_CONFIG") or None,
        "TRUSTED_PROXY_HOPS": int(env.get("TRUSTED_PROXY_HOPS", "0")),
        "GATEWAY_CORS_ORIGINS": cors_origins(env.get("GATEWAY_CORS_ORIGINS")),
        "SESSION_COOKIE_SECURE": production,
        "FILE_STORAGE_URL": file_storage_url(env),
        "FILE_STORAGE_S3": s3_options(env),
        "FILE_STORAGE_DOWNLOADS": file_downloads(env),
        "FILE_STORAGE_URL_TTL": int(env.get("FILE_STORAGE_URL_TTL", "60")),
        "ACCESS_LOG": _env_flag(env, "GATEWAY_ACCESS_LOG", True),
    }
    for provider in PROVIDERS:
        upper = provider.upper()
        config[f"{upper}_BASE_URL"] = (env.get(f"{upper}_BASE_URL")
                                       or PROVIDER_DEFAULT_URLS[provider]).rstrip("/")
        config[f"{upper}_API_KEY"] = env.get(f"{upper}_API_KEY") or None
    # the sender of every email: an addition to the seed's list (docs/contract.md), with a safe default
    config["SENDGRID_FROM_EMAIL"] = env.get("SENDGRID_FROM_EMAIL") or "no-reply@voice-gateway.dev"
    for name in ("CALCOM_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", "SENDGRID_WEBHOOK_PUBLIC_KEY"):
        config[name] = env.get(name) or None
    return config
