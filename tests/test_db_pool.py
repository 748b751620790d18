"""The database pool: connections kept between requests, a connection idle in the pool
pinged before use (one just used is taken as it is), against a real MariaDB, and a
connection given back rolled back unless its transaction was committed."""
import pytest
import sqlalchemy

from gateway_app.db import KEPT_CONNECTIONS, end_session, make_engine, ping_when_idle


def connection_id(engine):
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()


def test_a_connection_idle_too_long_is_pinged_and_replaced_when_dead_one_just_used_is_not_pinged(
        mysql_url, monkeypatch):
    now = [100.0]
    engine = sqlalchemy.create_engine(mysql_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle=5.0, clock=lambda: now[0])
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or real_ping(conn))
    killer = sqlalchemy.create_engine(mysql_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        first = connection_id(engine)
        now[0] += 1.0                         # used a second ago: taken without a ping
        assert connection_id(engine) == first and pings == []
        now[0] += 6.0                         # idle longer: pinged, alive, kept
        assert connection_id(engine) == first and len(pings) == 1
        with killer.connect() as conn:        # the server drops it while it waits in the pool
            conn.exec_driver_sql(f"KILL {first}")
        now[0] += 6.0
        replaced = connection_id(engine)      # the failed ping made the pool connect afresh
        assert replaced != first and len(pings) == 2
    finally:
        engine.dispose()
        killer.dispose()


def test_the_pools_keep_connections_for_a_busy_worker(tmp_path, mysql_url):
    for engine in (make_engine(f"sqlite:///{tmp_path}/pool.db"), make_engine(mysql_url)):
        try:
            assert engine.pool.size() == KEPT_CONNECTIONS
        finally:
            engine.dispose()


def test_an_in_memory_sqlite_database_keeps_its_one_connection_and_answers():
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kept (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO kept VALUES (1)")
    with engine.connect() as conn:   # the same connection, so the same database
        assert conn.exec_driver_sql("SELECT n FROM kept").scalar() == 1


BOTH = pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)


def counted_rollbacks(monkeypatch, engine):
    rollbacks = []
    real_rollback = engine.dialect.do_rollback
    monkeypatch.setattr(engine.dialect, "do_rollback",
                        lambda connection: rollbacks.append(1) or real_rollback(connection))
    return rollbacks


@BOTH
def test_a_committed_write_gives_its_connection_back_without_a_rollback_a_refused_one_rolls_back(
        app, tenant, monkeypatch):
    assert tenant.get("/api/v1/customers").status_code == 200   # the principal is cached now
    rollbacks = counted_rollbacks(monkeypatch, app.extensions["gateway_engine"])

    created = tenant.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"})
    assert created.status_code == 201 and rollbacks == []

    refused = tenant.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"})
    end_session()   # as the request's teardown does (the test's app context outlives the request)
    assert refused.status_code == 409 and rollbacks == [1]
    listed = tenant.get("/api/v1/customers", headers={"Cache-Control": "no-cache"}).get_json()
    assert [customer["name"] for customer in listed["data"]] == ["Ada"]


def test_a_connection_given_back_in_a_transaction_it_did_not_commit_is_rolled_back(tmp_path, mysql_url):
    for engine in (make_engine(f"sqlite:///{tmp_path}/reset.db"), make_engine(mysql_url)):
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TEMPORARY TABLE kept_back (n INTEGER)"
                                     if engine.dialect.name == "mysql" else "CREATE TABLE kept_back (n INTEGER)")
                conn.exec_driver_sql("INSERT INTO kept_back VALUES (1)")
            raw = engine.raw_connection()   # the same pooled connection, used past SQLAlchemy
            raw.cursor().execute("INSERT INTO kept_back VALUES (2)")
            raw.close()                     # given back inside the transaction it began
            with engine.connect() as conn:  # the same connection again
                assert conn.exec_driver_sql("SELECT n FROM kept_back").scalars().all() == [1]
        finally:
            engine.dispose()
