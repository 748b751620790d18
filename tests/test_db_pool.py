"""The database pool: connections kept between requests, and a connection idle in the
pool pinged before use (one just used is taken as it is), against a real MariaDB."""
import sqlalchemy

from gateway_app.db import KEPT_CONNECTIONS, make_engine, ping_when_idle


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
