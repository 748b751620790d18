"""Fixtures: real Redis and MariaDB, a database of its own per test (the schema made once per
session), tenants made through HTTP."""
import contextlib
import copy
import datetime as dt
import itertools
import os
import shutil
import tempfile
import uuid

import pytest
import redis as redis_lib
import sqlalchemy
from argon2 import profiles
from flask.testing import FlaskClient
from sqlalchemy.pool import NullPool

from gateway_app import create_app
from gateway_app.db import Base, Session
from gateway_app.events import subscribe
from gateway_app.migrate import upgrade
from gateway_app.models import Company
from gateway_app.policy import DEFAULT_PATH as DEFAULT_POLICY_PATH
from gateway_app.policy import PolicyError, load_policy
from tests.support.redis_topologies import LocalCluster, LocalSentinelSet
from tests.support.servers import (Gunicorn, MotoS3, PrivateRedis, RedisNotOurs, claim_redis_database,
                                   empty_own_redis_database, mysql_server_url, release_redis_database,
                                   worker_redis_url)

PASSWORD = "correct horse battery staple"
# "now" for the business rules of every app the tests build (app.config["CLOCK"]):
# dates a test books are written relative to it, never to the day the suite runs
TEST_NOW = dt.datetime(2029, 10, 1, 12, 0, tzinfo=dt.timezone.utc)   # a Monday
# this test process: "gw0", "gw1", ... under pytest-xdist, "main" otherwise
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's --dist loadgroup (the Makefile's), the tests that start gunicorn
    (four worker processes each) run on one worker, one at a time, never two at once; so do
    the browser tests (one headless Chromium)."""
    for item in items:
        if item.get_closest_marker("gunicorn"):
            item.add_marker(pytest.mark.xdist_group("gunicorn"))
        elif item.get_closest_marker("browser"):
            # one Chromium at a time, on one worker: it costs more memory than the tests
            item.add_marker(pytest.mark.xdist_group("browser"))


def pytest_sessionstart(session):
    """With REDIS_URL, the databases every worker would use are claimed before any starts,
    in this (the controlling) process, so that a refusal stops the run with its reason
    instead of crashing the workers."""
    url = os.environ.get("REDIS_URL")
    if not url or "PYTEST_XDIST_WORKER" in os.environ:
        return
    claimed = []
    try:
        for database_url in shared_redis_databases(session.config, url):
            claim_redis_database(database_url)
            claimed.append(database_url)
    except RedisNotOurs as refused:
        for database_url in claimed:
            release_redis_database(database_url)
        pytest.exit(f"make test refuses to use REDIS_URL: {refused}", returncode=4)


def pytest_sessionfinish(session):
    """The claimed databases of REDIS_URL are left empty, a worker that never used its own
    (or stopped early) included."""
    url = os.environ.get("REDIS_URL")
    if not url or "PYTEST_XDIST_WORKER" in os.environ:
        return
    try:
        for database_url in shared_redis_databases(session.config, url):
            release_redis_database(database_url)
    except (RedisNotOurs, redis_lib.RedisError):
        pass   # refused at the start, or unreachable now: nothing of ours to leave empty


def shared_redis_databases(config, url):
    """The database of REDIS_URL each test process uses (one per xdist worker)."""
    workers = getattr(config.option, "numprocesses", None) or 1
    return [worker_redis_url(url, worker) for worker in range(workers if isinstance(workers, int) else 1)]


@pytest.fixture(scope="session")
def redis_server():
    """With REDIS_URL, a database of its own: the URL's number + 1 + the xdist worker's index,
    which must be empty (or the tests' own from an earlier run), is emptied by the tests and
    left empty; the URL's own database is never touched. Otherwise a private redis-server
    this session (this worker) owns."""
    topology = os.environ.get("GATEWAY_TEST_REDIS")
    if topology:   # make test-redis-topologies: the same tests on a Cluster, or a Sentinel set
        server = {"cluster": LocalCluster, "sentinel": LocalSentinelSet}[topology]().start()
        yield server, server.url
        server.stop()
        return
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            url = worker_redis_url(url)
            claim_redis_database(url)
        except RedisNotOurs as refused:
            pytest.fail(f"make test refuses to use REDIS_URL: {refused}")
        yield None, url
        release_redis_database(url)   # left empty, as it was found
        return
    server = PrivateRedis().start()
    claim_redis_database(server.url)
    yield server, server.url
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server):
    return redis_server[1]


@pytest.fixture
def private_redis():
    """A Redis the test may stop and restart (fault tests)."""
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_client(redis_server, redis_url):
    server = redis_server[0]
    if isinstance(server, (LocalCluster, LocalSentinelSet)):
        server.flush()   # servers of this session's own
        client = server.client()
    else:
        client = redis_lib.Redis.from_url(redis_url)
        empty_own_redis_database(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def mysql_url():
    url = mysql_server_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("MariaDB is required in CI (TEST_DATABASE_URL)")
        pytest.skip("no MariaDB/MySQL server reachable (set TEST_DATABASE_URL)")
    return url


@contextlib.contextmanager
def own_mysql_database(mysql_url):
    """A new database on the MariaDB server, named for this test process (one per xdist
    worker) and dropped afterwards: the tests never drop a database they did not create."""
    name = f"gw_test_{WORKER}_{uuid.uuid4().hex[:12]}"
    server = sqlalchemy.create_engine(mysql_url, poolclass=NullPool)
    with server.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    base = mysql_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}?charset=utf8mb4"
    finally:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        server.dispose()


@pytest.fixture
def mysql_database(mysql_url):
    """A fresh, empty, uniquely named database on the MariaDB server, dropped afterwards
    (for migrations and subprocesses; ``database_url`` gives the schema-ready one)."""
    with own_mysql_database(mysql_url) as url:
        yield url


@pytest.fixture(scope="session")
def mysql_schema_database(mysql_url):
    """This worker's MariaDB database with the models' schema, created once per session."""
    with own_mysql_database(mysql_url) as url:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        Base.metadata.create_all(engine)
        yield url, engine
        engine.dispose()


def empty_mysql_database(engine):
    """Back to the state of a database just made by create_all: no rows, ids from 1 again,
    no table the models do not declare."""
    with engine.connect() as conn:
        # a lock left by a test fails its teardown within seconds instead of hanging
        conn.exec_driver_sql("SET SESSION lock_wait_timeout = 20, innodb_lock_wait_timeout = 20")
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        tables = dict(conn.exec_driver_sql(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE()").all())
        for name in tables:
            if name in Base.metadata.tables:
                conn.exec_driver_sql(f"DELETE FROM `{name}`")
            else:
                conn.exec_driver_sql(f"DROP TABLE `{name}`")
        conn.commit()
        for name, next_id in tables.items():
            if name in Base.metadata.tables and next_id and next_id > 1:
                conn.exec_driver_sql(f"ALTER TABLE `{name}` AUTO_INCREMENT = 1")
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")
    if set(Base.metadata.tables) - set(tables):
        Base.metadata.create_all(engine)


class OwnAddressClient(FlaskClient):
    """Each request comes from its own client address unless the test names one.

    The ip layer's 50/minute burst is proven in test_rate_limit*.py with explicit
    addresses; everywhere else a test of 60 requests must not trip over it.
    """

    _addresses = itertools.count(1)

    def open(self, *args, **kwargs):
        environ = kwargs.setdefault("environ_base", {})
        if "REMOTE_ADDR" not in environ:
            n = next(self._addresses)
            environ["REMOTE_ADDR"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        return super().open(*args, **kwargs)


_policies = {}


def parsed_policy(path=None):
    """What create_app would load from the policy file (load_policy), parsed and validated
    once per session per file version, and copied for each app; None when it fails to load,
    so that create_app reports the error itself."""
    path = path or os.environ.get("GATEWAY_CONFIG") or DEFAULT_POLICY_PATH
    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
        if key not in _policies:
            _policies[key] = load_policy(path)
    except (OSError, PolicyError):
        return None
    return copy.deepcopy(_policies[key])


# the default file store of the apps the tests build: a directory of their own under one
# temporary directory, removed when the test process ends
_FILES_ROOT = tempfile.TemporaryDirectory(prefix="gw-files-")


def build_app(database_url, redis_url=None, **overrides):
    config = {
        "FILE_STORAGE_URL": f"file://{_FILES_ROOT.name}/{uuid.uuid4().hex}",
        "SQLALCHEMY_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
        "GATEWAY_ADMIN_TOKEN": "admin-token-for-tests",
        "ACCESS_LOG": False,
        "TESTING": True,
        "CLOCK": lambda: TEST_NOW,
        # argon2's cheapest profile: production's (RFC 9106 low memory) is tested in test_passwords.py
        "PASSWORD_HASH_PARAMETERS": profiles.CHEAPEST,
    }
    config.update(overrides)
    if config.get("GATEWAY_POLICY") is None:
        config["GATEWAY_POLICY"] = parsed_policy(config.get("GATEWAY_CONFIG"))
    app = create_app(config)
    app.test_client_class = OwnAddressClient
    Base.metadata.create_all(app.extensions["gateway_engine"])
    return app


@pytest.fixture(scope="session")
def sqlite_schema_file(tmp_path_factory):
    """A SQLite file with the models' schema, made once per session and copied per test."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def database_url(request, tmp_path):
    """A database with the models' schema and no rows, the test's own: SQLite by default
    (a copy of the session's schema file); tests parametrized with 'mysql' run on
    MariaDB (this worker's database, emptied after the test)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "mysql":
        url, engine = request.getfixturevalue("mysql_schema_database")
        yield url
        Session.remove()    # nothing of the test's may keep a transaction open
        empty_mysql_database(engine)
        return
    shutil.copyfile(request.getfixturevalue("sqlite_schema_file"), tmp_path / "gateway.db")
    yield f"sqlite:///{tmp_path}/gateway.db"


@pytest.fixture
def empty_database_url(request, tmp_path):
    """A new database without any table (for migrations): SQLite by default, or MariaDB."""
    backend = getattr(request, "param", "sqlite")
    if backend == "mysql":
        return request.getfixturevalue("mysql_database")
    return f"sqlite:///{tmp_path}/empty.db"


@pytest.fixture
def app(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def built_apps():
    """``keep(app)`` for apps a test builds itself (its own config): their sessions and
    engines are let go after the test."""
    made = []

    def keep(app):
        made.append(app)
        return app
    yield keep
    Session.remove()
    for app in made:
        app.extensions["gateway_engine"].dispose()


@pytest.fixture
def served_behind_proxy(tmp_path, redis_url, redis_client):
    """The web process as deployed, 4 gunicorn workers behind a trusted proxy (one hop):
    each request may name its client address in X-Forwarded-For."""
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url, "TRUSTED_PROXY_HOPS": "1",
                       "GATEWAY_ACCESS_LOG": "0",
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"}, workers=4).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_s3():
    """moto's standalone S3 server, this test process's own (started on first use)."""
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture(params=["file", "s3"])
def file_storage(request, tmp_path):
    """The file store settings of an app, once per backend: a directory of the test's own,
    or a new bucket on moto's S3 server (with a key prefix, as deployments use)."""
    if request.param == "file":
        return {"FILE_STORAGE_URL": f"file://{tmp_path}/files"}
    server = request.getfixturevalue("moto_s3")
    bucket = f"gw-test-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=bucket)
    return {"FILE_STORAGE_URL": f"s3://{bucket}/gateway", "FILE_STORAGE_S3": server.s3_options}


@pytest.fixture
def files_app(database_url, redis_url, redis_client, file_storage):
    """An app with every integration configured, on each file store backend in turn."""
    app = build_app(database_url, redis_url, **PROVIDER_KEYS, **file_storage)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def files_client(files_app):
    return files_app.test_client()


@pytest.fixture
def client(app):
    return app.test_client()


class Tenant:
    """A company with an owner, made through the public sign-up and token endpoints."""

    def __init__(self, client, company, user, token):
        self.client = client
        self.company = company
        self.user = user
        self.token = token

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path, **kwargs):
        return self.client.get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path, **kwargs):
        return self.client.post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def patch(self, path, **kwargs):
        return self.client.patch(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def sign_up(client, tier="free", name=None):
    suffix = uuid.uuid4().hex[:8]
    email = f"owner-{suffix}@example.com"
    response = client.post("/api/v1/auth/signup", json={
        "company_name": name or f"Company {suffix}", "name": "Owner", "email": email,
        "password": PASSWORD})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    if tier != "free":
        company = Session.get(Company, body["company"]["id"])
        company.tier = tier
        Session.commit()
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.get_json()
    return Tenant(client, body["company"], {**body["user"], "email": email},
                  token.get_json()["access_token"])


@pytest.fixture
def tenant_factory(client):
    return lambda tier="free", name=None: sign_up(client, tier, name)


@pytest.fixture
def tenant(tenant_factory):
    return tenant_factory()


PROVIDER_KEYS = {"CALCOM_API_KEY": "cal_live_test", "RETELL_API_KEY": "key_test",
                 "STRIPE_API_KEY": "sk_test_123", "SENDGRID_API_KEY": "SG.test"}


@pytest.fixture
def provider_app(database_url, redis_url, redis_client):
    """An app with every integration configured (provider HTTP mocked with `responses`)."""
    app = build_app(database_url, redis_url, **PROVIDER_KEYS)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def provider_client(provider_app):
    return provider_app.test_client()


# --- inbound provider webhooks -------------------------------------------------------

# docs/integrations.md's test vectors are signed at this instant
# (Retell v=1700000000000, Stripe t=1700000000)
WEBHOOK_NOW = 1700000000.0
WEBHOOK_SECRETS = {"RETELL_API_KEY": "key_test", "STRIPE_WEBHOOK_SECRET": "whsec_test",
                   "CALCOM_WEBHOOK_SECRET": "calsecret"}


class PinnedClock:
    """The webhook verification clock (app.config["WEBHOOK_CLOCK"]), set by the test."""

    def __init__(self, value=WEBHOOK_NOW):
        self.value = value

    def __call__(self):
        return self.value


class WebhookSender:
    """Posts provider-shaped, correctly signed deliveries; every signing input can be overridden."""

    def __init__(self, client, clock, sendgrid_private_key):
        self.client = client
        self.clock = clock
        self.sendgrid_private_key = sendgrid_private_key

    @staticmethod
    def body_of(payload):
        import json
        if isinstance(payload, (bytes, str)):
            return payload.encode() if isinstance(payload, str) else payload
        return json.dumps(payload, separators=(",", ":")).encode()

    def post(self, path, body, headers):
        return self.client.post(path, data=body, headers={"Content-Type": "application/json", **headers})

    def retell(self, payload, at_ms=None, key="key_test", headers=None):
        from gateway_app.webhooks.signatures import retell_digest
        body = self.body_of(payload)
        version = int(self.clock() * 1000) if at_ms is None else at_ms
        signature = f"v={version},d={retell_digest(key, body, version)}"
        return self.post("/webhooks/retell", body,
                         {"x-retell-signature": signature} if headers is None else headers)

    def calcom(self, payload, secret="calsecret", headers=None):
        from gateway_app.webhooks.signatures import calcom_digest
        body = self.body_of(payload)
        return self.post("/webhooks/calcom", body,
                         {"X-Cal-Signature-256": calcom_digest(secret, body)} if headers is None else headers)

    def stripe(self, payload, at=None, secret="whsec_test", headers=None):
        from gateway_app.webhooks.signatures import stripe_digest
        body = self.body_of(payload)
        timestamp = int(self.clock()) if at is None else at
        signature = f"t={timestamp},v1={stripe_digest(secret, body, timestamp)}"
        return self.post("/webhooks/stripe", body,
                         {"Stripe-Signature": signature} if headers is None else headers)

    def sendgrid_headers(self, body, at=None, private_key=None):
        import base64
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        timestamp = str(int(self.clock()) if at is None else at)
        signature = (private_key or self.sendgrid_private_key).sign(
            timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}

    def sendgrid(self, events, at=None, private_key=None, headers=None):
        body = self.body_of(events)
        return self.post("/webhooks/sendgrid", body,
                         self.sendgrid_headers(body, at, private_key) if headers is None else headers)


def sendgrid_public_key_b64(private_key):
    import base64
    from cryptography.hazmat.primitives import serialization
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="session")
def sendgrid_private_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def webhook_clock():
    return PinnedClock()


@pytest.fixture
def webhook_app(database_url, redis_url, redis_client, webhook_clock, sendgrid_private_key):
    """The gateway with every provider's webhook secret set and the verification clock pinned."""
    app = build_app(database_url, redis_url, WEBHOOK_CLOCK=webhook_clock,
                    SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid_public_key_b64(sendgrid_private_key),
                    **WEBHOOK_SECRETS)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def heard(webhook_app):
    """Domain events the webhook app delivered (after commit), in order."""
    events = []
    subscribe(webhook_app, events.append)
    return events


@pytest.fixture
def webhooks(webhook_app, webhook_clock, sendgrid_private_key):
    return WebhookSender(webhook_app.test_client(), webhook_clock, sendgrid_private_key)


def link_provider_accounts(company_id, **provider_ids):
    """What the settings service does with `integrations`: copy the ids onto the company."""
    company = Session.get(Company, company_id)
    for name, value in provider_ids.items():
        setattr(company, name, value)
    Session.commit()
    return company

# -- identity helpers (API keys, members of other roles), made through HTTP ----------------------
def api_key_headers(tenant, scopes=("read", "write"), name="test key"):
    """``{"X-API-Key": ...}`` for a new key of the tenant's company."""
    response = tenant.post("/api/v1/settings/api-keys", json={"name": name, "scopes": list(scopes)})
    assert response.status_code == 201, response.get_json()
    return {"X-API-Key": response.get_json()["key"]}


def add_member(tenant, role="member"):
    """A Tenant (same client and company) for a new active member with ``role``:
    invited through the team service, joined with the emailed invitation token."""
    from sqlalchemy import select

    from gateway_app.models import OutboxMessage
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    invited = tenant.post("/api/v1/team/members", json={"email": email, "name": role.title(), "role": role})
    assert invited.status_code == 201, invited.get_json()
    message = next(m for m in Session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sendgrid.email"))
                   if m.payload["to"] == [email])
    token = message.payload["text"].rsplit(" ", 1)[-1]
    accepted = tenant.client.post("/api/v1/auth/accept-invite", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.get_json()
    pair = tenant.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200, pair.get_json()
    return Tenant(tenant.client, tenant.company, {**invited.get_json(), "email": email},
                  pair.get_json()["access_token"])

# --- business-service helpers (calls, customers, dashboard) ---

def user_with_role(tenant, role):
    """A second user of ``tenant``'s company with ``role``, signed in with a bearer token."""
    from gateway_app.identity.passwords import hash_password
    from gateway_app.models import User
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    Session.add(User(company_id=tenant.company["id"], email=email, name=role.title(), role=role,
                     password_hash=hash_password(PASSWORD)))
    Session.commit()
    token = tenant.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.get_json()
    return Tenant(tenant.client, tenant.company, {"email": email, "role": role},
                  token.get_json()["access_token"])


def insert_call(company_id, started_at, **fields):
    """A call row as the Retell webhook would store it (committed)."""
    from gateway_app.models import Call
    values = dict(direction="inbound", status="answered", duration_seconds=60)
    values.update(fields)
    call = Call(company_id=company_id, started_at=started_at, **values)
    Session.add(call)
    Session.commit()
    return call


def insert_appointment(company_id, starts_at, **fields):
    import datetime as dt

    from gateway_app.models import Appointment
    values = dict(title="Appointment", status="confirmed", ends_at=starts_at + dt.timedelta(minutes=30))
    values.update(fields)
    appointment = Appointment(company_id=company_id, starts_at=starts_at, **values)
    Session.add(appointment)
    Session.commit()
    return appointment
