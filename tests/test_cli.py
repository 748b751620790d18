"""The `gateway` command, run as the platform runs it: a subprocess configured by the environment."""
import os
import re
import subprocess
import sys

import pytest
import sqlalchemy

from gateway_app.demo import COMPANIES
from tests.conftest import build_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTED_TABLES = ("companies", "users", "customers", "calls", "appointments", "invoices",
                  "payments", "usage_records")
CREDENTIAL_LINE = re.compile(r"^\s+(\S+@\S+)\s+(\S+)\s+(free|pro|enterprise|unlimited)$", re.M)


def gateway(*args, **env):
    clean = {name: value for name, value in os.environ.items()
             if name not in ("DATABASE_URL", "JAWSDB_URL", "JAWSDB_MARIA_URL", "CLEARDB_DATABASE_URL",
                             "REDIS_URL", "REDIS_TLS_URL", "GATEWAY_CONFIG", "GATEWAY_ENV", "DYNO")}
    clean["PYTHONPATH"] = ROOT   # this checkout's code, not an installed copy
    return subprocess.run([sys.executable, "-m", "gateway_app.cli", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=240)


def table_names(url):
    engine = sqlalchemy.create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def row_counts(url):
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        counts = {table: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
                  for table in COUNTED_TABLES}
    engine.dispose()
    return counts


def assert_clean_failure(result, *named):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    last = lines[-1]
    assert last.startswith("gateway: ")
    for word in named:
        assert word in last, last


def test_db_upgrade_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    result = gateway("db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "database upgraded to head" in result.stdout
    assert {"companies", "users", "calls", "alembic_version"} <= table_names(url)
    assert gateway("db", "upgrade", DATABASE_URL=url).returncode == 0   # a second release is harmless


@pytest.mark.mysql
def test_db_upgrade_on_mariadb(mysql_database):
    result = gateway("db", "upgrade", DATABASE_URL=mysql_database)
    assert result.returncode == 0, result.stderr
    assert {"companies", "users", "calls", "alembic_version"} <= table_names(mysql_database)


@pytest.mark.parametrize("empty_database_url", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)],
                         indirect=True)
def test_seed_demo_is_idempotent_and_its_credentials_log_in(empty_database_url, redis_url, redis_client):
    database_url = empty_database_url   # migrated below, so without the models' schema yet
    assert gateway("db", "upgrade", DATABASE_URL=database_url).returncode == 0
    first = gateway("seed", "--demo", "--calls", "150", "--largest", "400", DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    counts = row_counts(database_url)
    assert counts["companies"] == len(COMPANIES) and counts["users"] == 4 * len(COMPANIES)
    assert counts["calls"] == 3 * 150 + 400
    assert min(counts.values()) > 0

    second = gateway("seed", "--demo", "--calls", "150", "--largest", "400", DATABASE_URL=database_url)
    assert second.returncode == 0, second.stderr
    assert row_counts(database_url) == counts
    credentials = CREDENTIAL_LINE.findall(first.stdout)
    assert credentials == CREDENTIAL_LINE.findall(second.stdout)
    assert sorted(tier for _, _, tier in credentials) == sorted(COMPANIES)

    app = build_app(database_url, redis_url)
    client = app.test_client()
    for email, password, tier in credentials:
        response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, (email, response.get_json())
        assert response.get_json()["token_type"] == "Bearer"
    wrong = client.post("/api/v1/auth/token", json={"email": credentials[0][0], "password": "nope-nope"})
    assert wrong.status_code == 401
    app.extensions["gateway_engine"].dispose()


def test_seed_data_is_consistent(tmp_path):
    url = f"sqlite:///{tmp_path}/demo.db"
    assert gateway("db", "upgrade", DATABASE_URL=url).returncode == 0
    assert gateway("seed", "--demo", "--calls", "300", "--largest", "300", DATABASE_URL=url).returncode == 0
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        sql = conn.exec_driver_sql
        statuses = {row[0] for row in sql("SELECT DISTINCT status FROM calls")}
        assert {"answered", "missed", "voicemail"} <= statuses
        # only answered calls have a conversation; missed calls have none
        assert sql("SELECT COUNT(*) FROM calls WHERE status='answered' AND "
                   "(transcript IS NULL OR summary IS NULL OR outcome IS NULL)").scalar() == 0
        assert sql("SELECT COUNT(*) FROM calls WHERE status='missed' AND transcript IS NOT NULL").scalar() == 0
        assert sql("SELECT COUNT(*) FROM customers WHERE phone NOT LIKE '+1%'").scalar() == 0
        # appointments: past ones are settled, future ones are still open or cancelled
        assert sql("SELECT COUNT(*) FROM appointments WHERE starts_at > datetime('now') "
                   "AND status IN ('completed', 'no_show')").scalar() == 0
        assert sql("SELECT COUNT(*) FROM appointments WHERE starts_at < datetime('now', '-1 day') "
                   "AND status IN ('pending', 'confirmed')").scalar() == 0
        assert sql("SELECT COUNT(*) FROM appointments WHERE starts_at > datetime('now')").scalar() > 0
        assert sql("SELECT COUNT(*) FROM appointments WHERE call_id IS NOT NULL").scalar() > 0
    engine.dispose()


def test_worker_once_on_an_empty_outbox(tmp_path):
    url = f"sqlite:///{tmp_path}/worker.db"
    assert gateway("db", "upgrade", DATABASE_URL=url).returncode == 0
    result = gateway("worker", "--once", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("db", "upgrade"), ("worker", "--once"), ("seed", "--demo")])
def test_unreachable_database_is_one_clear_line(command):
    result = gateway(*command, DATABASE_URL="mysql://root:hunter2@127.0.0.1:1/nowhere")
    assert_clean_failure(result, "DATABASE_URL", "127.0.0.1:1")
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("url", ["not a url", "nosuchdriver://host/db"])
def test_malformed_database_url_is_one_clear_line(url):
    assert_clean_failure(gateway("db", "upgrade", DATABASE_URL=url), "DATABASE_URL")


def test_bad_policy_file_is_one_clear_line(tmp_path):
    with open(os.path.join(ROOT, "conf", "gateway.yaml"), encoding="utf-8") as handle:
        policy = handle.read()
    bad = tmp_path / "gateway.yaml"
    bad.write_text(policy.replace("service_discovery:\n", "service_discovery:\n  retries: 3\n", 1))
    url = f"sqlite:///{tmp_path}/policy.db"
    result = gateway("worker", "--once", DATABASE_URL=url, GATEWAY_CONFIG=str(bad))
    assert_clean_failure(result, str(bad), "service_discovery.retries")

    missing = gateway("worker", "--once", DATABASE_URL=url, GATEWAY_CONFIG=str(tmp_path / "nope.yaml"))
    assert_clean_failure(missing, "nope.yaml")
