"""`gateway backup` / `gateway restore` as the platform runs them (subprocesses configured
by the environment), on SQLite and MariaDB, into file:// and s3:// stores."""
import contextlib
import datetime as dt
import io
import re

import pytest
import sqlalchemy

from gateway_app.backups import BackupError, list_backups, restore_backup, take_backup
from gateway_app.db import Base
from gateway_app.demo import seed_demo
from gateway_app.files import build_store
from gateway_app.migrate import upgrade
from gateway_app.models import Call, Customer
from tests.conftest import build_app, own_mysql_database, sign_up
from tests.test_cli import gateway

DATABASES = pytest.mark.parametrize("empty_database_url", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)],
                                    indirect=True)
NAME = re.compile(r"backup written: (gateway-\S+\.jsonl\.gz)")


def storage_env(file_storage):
    env = {"FILE_STORAGE_URL": file_storage["FILE_STORAGE_URL"]}
    options = file_storage.get("FILE_STORAGE_S3")
    if options:
        env.update({"FILE_STORAGE_ENDPOINT_URL": options["endpoint_url"], "AWS_REGION": options["region"],
                    "AWS_ACCESS_KEY_ID": options["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": options["secret_access_key"]})
    return env


def all_rows(url):
    """Every row of every table of the models, in primary-key order."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return {table.name: [tuple(row) for row in conn.execute(
                sqlalchemy.select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


def seed(database_url, file_storage):
    """Demo data (companies of every tier, users, customers, calls, appointments, invoices,
    usage) plus what the API adds: a sign-up, an attachment, an audit trail, an outbox."""
    upgrade(database_url)
    app = build_app(database_url, **file_storage)
    try:
        with app.app_context():
            seed_demo(calls_per_company=40, largest_company_calls=60)
            owner = sign_up(app.test_client(), name="Ünïcode Café ☕")
            customer = owner.post("/api/v1/customers", json={"name": "Jane \"Quotes\" O'Neil",
                                                              "notes": "line one\nline two"}).get_json()
            uploaded = owner.post(f"/api/v1/customers/{customer['id']}/attachments",
                                  data={"file": (io.BytesIO(b"%PDF-1.4 x"), "c.pdf", "application/pdf")},
                                  content_type="multipart/form-data")
            assert uploaded.status_code == 201, uploaded.get_json()
            owner.post("/api/v1/team/members", json={"email": "m@example.com", "name": "M", "role": "member"})
    finally:
        app.extensions["gateway_engine"].dispose()


@contextlib.contextmanager
def fresh_database(like, tmp_path, request):
    """A new empty database of the same kind as ``like`` (dropped afterwards on MariaDB)."""
    if like.startswith("mysql"):
        with own_mysql_database(request.getfixturevalue("mysql_url")) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/restored.db"


@DATABASES
def test_a_backup_restores_into_a_fresh_database_with_identical_rows(empty_database_url, file_storage, tmp_path,
                                                                      request):
    source = empty_database_url
    seed(source, file_storage)
    env = storage_env(file_storage)

    taken = gateway("backup", DATABASE_URL=source, **env)
    assert taken.returncode == 0, taken.stderr
    name = NAME.search(taken.stdout).group(1)

    with fresh_database(source, tmp_path, request) as target:
        restored = gateway("restore", name, DATABASE_URL=target, **env)
        assert restored.returncode == 0, restored.stderr
        before, after = all_rows(source), all_rows(target)
    assert {table: len(rows) for table, rows in after.items()} == {table: len(rows) for table, rows in before.items()}
    assert min(len(before[table]) for table in ("companies", "users", "calls", "customers", "appointments",
                                                "customer_attachments", "audit_log", "outbox")) > 0
    assert after == before


def in_process_cli(monkeypatch, capsys, *args, **env):
    """``gateway *args`` in this process (the subprocess runs are above): (status, stdout, stderr)."""
    from gateway_app import cli
    for name in ("DATABASE_URL", "FILE_STORAGE_URL", "FILE_STORAGE_DIR", "GATEWAY_ENV", "DYNO",
                 "BUCKETEER_BUCKET_NAME", "REDIS_URL", "REDIS_TLS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@DATABASES
def test_restore_refuses_a_database_that_is_not_empty_unless_forced(empty_database_url, file_storage,
                                                                     monkeypatch, capsys):
    source = empty_database_url
    seed(source, file_storage)
    env = {"DATABASE_URL": source, **storage_env(file_storage)}
    status, out, _ = in_process_cli(monkeypatch, capsys, "backup", **env)
    assert status == 0
    name = NAME.search(out).group(1)
    status, out, _ = in_process_cli(monkeypatch, capsys, "backup", "--list", **env)
    assert status == 0 and out.startswith(name)
    engine = sqlalchemy.create_engine(source)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.delete(Call.__table__).where(Call.__table__.c.id <= 10))
        conn.execute(sqlalchemy.update(Customer.__table__).values(notes="changed after the backup"))
    engine.dispose()
    changed = all_rows(source)

    status, _, err = in_process_cli(monkeypatch, capsys, "restore", name, **env)
    assert status == 1
    assert "not empty" in err and "--force" in err
    assert all_rows(source) == changed   # nothing touched

    status, _, err = in_process_cli(monkeypatch, capsys, "restore", "gateway-20990101T000000000Z.jsonl.gz", **env)
    assert status == 1 and "no backup named" in err
    status, out, err = in_process_cli(monkeypatch, capsys, "restore", name, "--force", **env)
    assert status == 0, err
    restored = all_rows(source)
    assert len(restored["calls"]) == len(changed["calls"]) + 10
    assert "changed after the backup" not in {row[5] for row in restored["customers"]}


def test_the_newest_dumps_are_kept_and_named_by_time(file_storage, tmp_path):
    url = f"sqlite:///{tmp_path}/small.db"
    upgrade(url)
    engine = sqlalchemy.create_engine(url)
    store = build_store({"FILE_STORAGE_URL": file_storage["FILE_STORAGE_URL"],
                         "FILE_STORAGE_S3": file_storage.get("FILE_STORAGE_S3")})
    start = dt.datetime(2029, 10, 1, 3, 0, tzinfo=dt.timezone.utc)
    try:
        names = [take_backup(engine, store, keep=3, now=start + dt.timedelta(days=n)) for n in range(5)]
    finally:
        engine.dispose()
    assert names[0] == "gateway-20291001T030000000Z.jsonl.gz"
    assert [item.key for item in list_backups(store)] == [f"backups/{name}" for name in names[2:]]


def test_a_damaged_or_foreign_dump_is_refused(file_storage, tmp_path):
    import gzip
    url = f"sqlite:///{tmp_path}/target.db"
    engine = sqlalchemy.create_engine(url)
    store = build_store({"FILE_STORAGE_URL": file_storage["FILE_STORAGE_URL"],
                         "FILE_STORAGE_S3": file_storage.get("FILE_STORAGE_S3")})
    name = "gateway-20291001T030000000Z.jsonl.gz"
    store.save(f"backups/{name}", io.BytesIO(gzip.compress(b'{"format":"pg_dump"}\n')))
    try:
        with pytest.raises(BackupError, match="not a gateway backup"):
            restore_backup(engine, store, name, upgrade=lambda: Base.metadata.create_all(engine))
        with pytest.raises(BackupError, match="not a backup name"):
            restore_backup(engine, store, "../../etc/passwd")
    finally:
        engine.dispose()


@DATABASES
def test_a_dump_sees_the_database_as_it_was_when_it_began(empty_database_url):
    from gateway_app.backups import begin_snapshot, write_dump
    from gateway_app.db import make_engine
    from gateway_app.models import Company
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    companies = Company.__table__
    try:
        with engine.begin() as conn:
            conn.execute(companies.insert(), [{"name": "Before", "tier": "free", "timezone": "UTC",
                                               "business_hours": {}, "integrations": {}, "plan_minutes": 500,
                                               "created_at": dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)}])
        with engine.connect() as snapshot:
            begin_snapshot(snapshot)
            with engine.begin() as other:   # committed while the dump runs
                other.execute(companies.insert(), [{"name": "During", "tier": "free", "timezone": "UTC",
                                                    "business_hours": {}, "integrations": {},
                                                    "plan_minutes": 500,
                                                    "created_at": dt.datetime(2029, 1, 2, tzinfo=dt.timezone.utc)}])
            counts = write_dump(snapshot, io.BytesIO(), dt.datetime(2029, 1, 3, tzinfo=dt.timezone.utc))
            snapshot.rollback()
    finally:
        engine.dispose()
    assert counts["companies"] == 1
