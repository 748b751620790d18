"""Settings from a Heroku-style environment: add-on URLs, TLS Redis, production secrets."""
import datetime as dt
import shutil
import ssl
import subprocess

import pytest
import redis as redis_lib
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway_app.redis_store import make_redis
from gateway_app.settings import SettingsError, from_environment
from tests.support.servers import free_port, wait_for_port
from tests.test_cli import assert_clean_failure, gateway


@pytest.mark.parametrize("variable", ["JAWSDB_URL", "JAWSDB_MARIA_URL", "CLEARDB_DATABASE_URL"])
def test_mysql_addon_urls_are_used_through_pymysql(variable):
    config = from_environment({variable: "mysql://u:p@db.example.com:3306/app?reconnect=true"})
    assert config["SQLALCHEMY_DATABASE_URL"] == "mysql+pymysql://u:p@db.example.com:3306/app?reconnect=true"


def test_database_url_wins_over_addon_urls():
    config = from_environment({"DATABASE_URL": "mariadb://u:p@primary/app",
                               "JAWSDB_URL": "mysql://u:p@addon/app"})
    assert config["SQLALCHEMY_DATABASE_URL"] == "mysql+pymysql://u:p@primary/app"


def test_default_database_is_a_sqlite_file_under_var():
    url = from_environment({})["SQLALCHEMY_DATABASE_URL"]
    assert url.startswith("sqlite:///") and url.endswith("/var/gateway.db")


def test_redis_tls_url_is_preferred():
    config = from_environment({"REDIS_URL": "redis://plain:6379", "REDIS_TLS_URL": "rediss://tls:6380"})
    assert config["REDIS_URL"] == "rediss://tls:6380"
    assert from_environment({"REDIS_URL": "redis://plain:6379"})["REDIS_URL"] == "redis://plain:6379"
    assert from_environment({})["REDIS_URL"] is None


def test_rediss_pool_accepts_self_signed_certificates():
    client = make_redis("rediss://:secret@redis.example.com:6380/0")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_NONE
    assert kwargs["ssl_check_hostname"] is False
    assert issubclass(client.connection_pool.connection_class, redis_lib.SSLConnection)


def self_signed_certificate(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform-redis.internal")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_rediss_connects_to_a_server_with_a_self_signed_certificate(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(port, 10)
        client = make_redis(f"rediss://127.0.0.1:{port}/0", socket_timeout=2.0)
        assert client.ping() is True
        client.set("tls-check", "ok")
        assert client.get("tls-check") == b"ok"
        client.connection_pool.disconnect()
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("marker", [{"GATEWAY_ENV": "production"}, {"DYNO": "web.1"}])
def test_production_requires_a_secret_key(marker):
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        from_environment(marker)
    assert from_environment({**marker, "SECRET_KEY": STRONG})["SECRET_KEY"] == STRONG


STRONG = "Vq3s9JxL0cT7mB2nRk8wYf4hZp6dGa1e"          # 32 characters, 32 distinct
STRONG_HEX = "9f86d081884c7d659a2feaa0c55ad015"      # 128 random bits as hex
WEAK = {
    "too short": "Vq3s9JxL0cT7mB2nRk8wYf4hZp6dGa1",   # 31 characters
    "one character repeated": "k" * 64,
    "two characters": "ab" * 24,
    "a short pattern repeated": "12345" * 8,
    "a word repeated": "secret" * 8,
    "seven distinct characters": "abcdefg" * 5,
}


@pytest.mark.parametrize("variable", ["SECRET_KEY", "GATEWAY_ADMIN_TOKEN"])
@pytest.mark.parametrize("weak", list(WEAK.values()), ids=list(WEAK))
@pytest.mark.parametrize("marker", [{"GATEWAY_ENV": "production"}, {"DYNO": "web.1"}])
def test_production_refuses_a_weak_secret_naming_the_variable(marker, variable, weak):
    env = {**marker, "SECRET_KEY": STRONG, "GATEWAY_ADMIN_TOKEN": STRONG_HEX, variable: weak}
    with pytest.raises(SettingsError) as refused:
        from_environment(env)
    message = str(refused.value)
    assert message.startswith(variable) and "production" in message
    assert weak not in message   # the value itself never reaches a log


def test_production_accepts_strong_secrets_and_no_admin_token():
    config = from_environment({"GATEWAY_ENV": "production", "SECRET_KEY": STRONG,
                               "GATEWAY_ADMIN_TOKEN": STRONG_HEX})
    assert config["SECRET_KEY"] == STRONG and config["GATEWAY_ADMIN_TOKEN"] == STRONG_HEX
    # without the variable the admin API is off, which is not a weak token
    assert from_environment({"DYNO": "web.1", "SECRET_KEY": STRONG_HEX})["GATEWAY_ADMIN_TOKEN"] is None


def test_development_keeps_accepting_short_secrets():
    config = from_environment({"SECRET_KEY": "dev", "GATEWAY_ADMIN_TOKEN": "admin"})
    assert config["SECRET_KEY"] == "dev" and config["GATEWAY_ADMIN_TOKEN"] == "admin"


def test_a_weak_admin_token_stops_the_command(tmp_path):
    result = gateway("worker", "--once", DATABASE_URL=f"sqlite:///{tmp_path}/p.db", DYNO="worker.1",
                     SECRET_KEY=STRONG, GATEWAY_ADMIN_TOKEN="admin-token")
    assert_clean_failure(result, "GATEWAY_ADMIN_TOKEN")
    assert "admin-token" not in result.stderr.replace("GATEWAY_ADMIN_TOKEN", "")


def test_gunicorns_app_refuses_to_load_with_a_weak_secret_key(tmp_path):
    """wsgi.py, what gunicorn loads: a clean message and exit status 3 (no respawning)."""
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {name: value for name, value in os.environ.items()
           if name not in ("REDIS_URL", "REDIS_TLS_URL", "GATEWAY_ADMIN_TOKEN")}
    env.update(PYTHONPATH=root, GATEWAY_ENV="production", SECRET_KEY="x" * 48,
               DATABASE_URL=f"sqlite:///{tmp_path}/w.db")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("gateway: cannot start: SECRET_KEY")


def test_development_generates_a_secret_key():
    assert len(from_environment({})["SECRET_KEY"]) >= 32


def test_production_without_a_secret_key_stops_the_command(tmp_path):
    result = gateway("worker", "--once", DATABASE_URL=f"sqlite:///{tmp_path}/p.db", DYNO="worker.1")
    assert_clean_failure(result, "SECRET_KEY")
