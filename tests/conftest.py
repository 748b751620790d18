"""Fixtures: real Redis and MariaDB, a fresh database per test, tenants made through HTTP."""
import os
import uuid

import pytest
import redis as redis_lib
import sqlalchemy

from gateway_app import create_app
from gateway_app.db import Base, Session
from gateway_app.models import Company
from tests.support.servers import PrivateRedis, mysql_server_url, redis_available

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def redis_server():
    """REDIS_URL when set; otherwise a private redis-server this session owns."""
    url = os.environ.get("REDIS_URL")
    if url:
        if not redis_available(url):
            pytest.fail(f"REDIS_URL={url} is not reachable")
        yield None, url
        return
    server = PrivateRedis().start()
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
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
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


@pytest.fixture
def mysql_database(mysql_url):
    """A fresh, uniquely named database on the MariaDB server, dropped afterwards."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    server = sqlalchemy.create_engine(mysql_url)
    with server.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    base = mysql_url.rsplit("/", 1)[0]
    yield f"{base}/{name}?charset=utf8mb4"
    with server.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    server.dispose()


def build_app(database_url, redis_url=None, **overrides):
    config = {
        "SQLALCHEMY_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
        "GATEWAY_ADMIN_TOKEN": "admin-token-for-tests",
        "ACCESS_LOG": False,
        "TESTING": True,
    }
    config.update(overrides)
    app = create_app(config)
    Base.metadata.create_all(app.extensions["gateway_engine"])
    return app


@pytest.fixture
def database_url(request, tmp_path):
    """SQLite by default; tests parametrized with backend='mysql' run on MariaDB."""
    backend = getattr(request, "param", "sqlite")
    if backend == "mysql":
        return request.getfixturevalue("mysql_database")
    return f"sqlite:///{tmp_path}/gateway.db"


@pytest.fixture
def app(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


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


def add_member(tenant, role):
    """Another user of ``tenant``'s company with ``role``, signed in with a bearer token."""
    from gateway_app.identity.passwords import hash_password
    from gateway_app.models import User

    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    user = User(company_id=tenant.company["id"], email=email, name=role.title(), role=role,
                password_hash=hash_password(PASSWORD))
    Session.add(user)
    Session.commit()
    token = tenant.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.get_json()
    return Tenant(tenant.client, tenant.company, {"id": user.id, "email": email, "role": role},
                  token.get_json()["access_token"])
