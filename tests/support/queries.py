"""Counting the SQL statements a request costs (the no-N+1 and warm-cache tests)."""
import contextlib

from sqlalchemy import event, func, select

from gateway_app.db import Session


@contextlib.contextmanager
def counted_queries(app):
    """Yields the list of statements the app's engine executes inside the block."""
    statements = []
    engine = app.extensions["gateway_engine"]

    def record(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count_rows(model, *where):
    """Rows of ``model`` as the database has them now (not as this session last saw them)."""
    Session.expire_all()
    return Session.scalar(select(func.count()).select_from(model).where(*where))
