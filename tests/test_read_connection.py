"""Read connections (gateway_app/db.py read_connection): a read-only unit runs on a pooled
connection of its own, or in the request's session when it has one."""
import sqlalchemy
from sqlalchemy import exc, text

from gateway_app.db import Session, bind, make_engine, read_connection


def test_a_read_without_a_session_opens_none_and_returns_its_connection(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    bind(engine)
    try:
        with read_connection() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
            assert engine.pool.checkedout() == 1
        assert engine.pool.checkedout() == 0
        assert not Session.registry.has()   # nothing for the request's teardown to end
    finally:
        Session.remove()
        engine.dispose()


def test_a_read_in_a_request_with_a_session_sees_its_uncommitted_writes(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE things (n INTEGER)")
    bind(engine)
    try:
        Session.execute(text("INSERT INTO things VALUES (7)"))
        with read_connection() as connection:
            assert connection.execute(text("SELECT n FROM things")).scalar() == 7
        Session.rollback()
        with read_connection() as connection:
            assert connection.execute(text("SELECT n FROM things")).scalar() is None
    finally:
        Session.remove()
        engine.dispose()


def test_a_database_lost_after_the_read_leaves_what_was_read_standing(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    bind(engine)

    def lost(_self):
        raise exc.OperationalError("ROLLBACK", {}, Exception("gone"))

    try:
        with read_connection() as connection:
            answer = connection.execute(text("SELECT 1")).scalar()
            monkeypatch.setattr(sqlalchemy.engine.Connection, "close", lost)
        assert answer == 1
    finally:
        monkeypatch.undo()
        Session.remove()
        engine.dispose()


def test_a_read_within_another_shares_its_connection(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    bind(engine)
    try:
        with read_connection() as outer:
            with read_connection() as inner:
                assert inner is outer and engine.pool.checkedout() == 1
            assert not outer.closed   # the inner block leaves the outer one's connection open
        assert outer.closed and engine.pool.checkedout() == 0
        with read_connection() as later:   # a new block after the outer one: a new connection
            assert later is not outer
    finally:
        Session.remove()
        engine.dispose()
