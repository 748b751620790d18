"""Database engine, the request-scoped SQLAlchemy session, and read connections."""
import datetime as dt
import logging
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import orjson
from sqlalchemy import BigInteger, Column, DateTime, Integer, String, aggregate_order_by, create_engine, event, exc, \
    func, literal, literal_column, type_coerce
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker
from sqlalchemy.sql.expression import Label, TypeCoerce
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, UserDefinedType

# BIGINT ids on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer, "sqlite")


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (MySQL DATETIME has no zone) and always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class IsoInstant(UserDefinedType):
    """A UTCDateTime column read as the text an answer shows of it: ISO 8601 as
    ``datetime.isoformat`` writes an aware UTC instant (``2026-03-01T09:30:00+00:00``,
    with ``.ffffff`` when there are microseconds). For read paths that send stored
    instants as they are: on SQLite each was parsed from its text into a datetime only
    to be written back as text. Only for selected columns (``iso_instant``), never in DDL.
    """

    cache_ok = True

    def get_col_spec(self, **_kw):
        return "DATETIME"

    def result_processor(self, dialect, coltype):
        as_datetime = UTCDateTime().dialect_impl(dialect).result_processor(dialect, coltype)

        def iso(value):
            if value is None:
                return None
            # SQLAlchemy's SQLite text of a DATETIME: "YYYY-MM-DD HH:MM:SS.ffffff"
            if value.__class__ is str and len(value) == 26 and value[10] == " " and value[19] == ".":
                if value.endswith(".000000"):
                    return f"{value[:10]}T{value[11:19]}+00:00"
                return f"{value[:10]}T{value[11:]}+00:00"
            return as_datetime(value).isoformat()
        return iso


def iso_instant(column):
    """``column`` (a UTCDateTime) selected as its ISO 8601 text, under its own key."""
    return type_coerce(column, IsoInstant()).label(column.key)


def one_of(column, values):
    """``column IN (values)`` with each value a plain bound parameter. ``column.in_(values)``
    makes one "expanding" parameter, whose SQL is rendered again on every execution of a
    statement otherwise compiled once (a tenth of the dashboard overview's CPU)."""
    return column.in_([literal(value, column.type) for value in values])


# MariaDB's text of a DATETIME as ``datetime.isoformat`` writes the aware UTC instant: the
# columns are DATETIME without fractional seconds, so there is never a ``.ffffff``
_MARIADB_ISO = literal_column("'%Y-%m-%dT%H:%i:%s+00:00'")


def like_escaped(text):
    """``text`` escaped for a LIKE pattern with '/' as its escape character, as
    ``contains(text, autoescape=True)`` escapes it: for a statement built once that binds
    the text (``contains(bindparam(...), escape="/")``) instead of holding it."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


class CaseFolded(FunctionElement):
    """``lower(column)``, to match against a lower-cased LIKE pattern, except on SQLite,
    where it is the column as it is: SQLite's LIKE folds the case of ASCII letters itself,
    the only letters its ``lower()`` folds, so there ``lower()`` would only copy the text
    of every row a search scans (about half of a customer search's statement)."""
    name = "lower"
    type = String()
    inherit_cache = True


@compiles(CaseFolded)
def _lower(element, compiler, **kw):
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(CaseFolded, "sqlite")
def _as_it_is(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


def case_folded(column):
    """``column`` for a LIKE against a lower-cased pattern (``case_folded(c).contains(...)``)."""
    return CaseFolded(column)


def _table_column(column):
    """The table column a selected column is (as it is, labelled, or an iso_instant), or None."""
    if isinstance(column, Label):
        column = column.element
    if isinstance(column, TypeCoerce):
        column = column.typed_expression
    return column if isinstance(column, Column) else None


def _json_value(column, dialect):
    """What a JSON object of the row holds for ``column``: the table column itself (ints,
    text: types without a result processor) or an IsoInstant's text; None when only the
    row gives its value as it is (any other type, or an expression: an aggregate of ints is
    a DECIMAL to PyMySQL and would be an int in JSON)."""
    return _json_value_of(_table_column(column), column, dialect)


def _union_json_value(column, dialect):
    """``_json_value`` for a column of a UNION whose branches each select a table column
    or a NULL of its type under it: it holds what a table column of its type holds."""
    return _json_value_of(column, column, dialect)


def _json_value_of(source, column, dialect):
    if source is None or not column.key.isidentifier():
        return None
    kind = column.type
    if isinstance(kind, IsoInstant):
        return func.date_format(source, _MARIADB_ISO)
    if isinstance(kind, (Integer, String)) and kind.dialect_impl(dialect).result_processor(dialect, None) is None:
        return source
    return None


@lru_cache(maxsize=64)
def _json_object_statement(statement, dialect, value_of=_json_value):
    """(``statement`` selecting one JSON object per row of the columns it can hold, then
    the others as they are; the others' keys; every key in the rows' order), or None when
    fewer than two columns would go into the object. ``value_of``: what the object holds
    of a column (``_json_value``, or ``_union_json_value`` for a UNION's columns)."""
    pairs, others = [], []
    for column in statement.selected_columns:
        value = value_of(column, dialect)
        if value is None:
            others.append(column)
        else:
            pairs += [literal_column(f"'{column.key}'"), value]
    keys = tuple(statement.selected_columns.keys())
    if len(pairs) < 4 or len(set(keys)) != len(keys):
        return None
    return (statement.with_only_columns(func.json_object(*pairs), *others, maintain_column_froms=True),
            tuple(column.key for column in others), keys)


def row_dicts_of(connection, statement, params):
    """The rows of ``statement`` as dicts by column name, as ``dict(row._mapping)`` gives them.

    On MariaDB each row comes as one JSON object made by the server (with the values it
    cannot hold beside it), read by orjson in C: PyMySQL parses every value of every row,
    and every column's description, in Python, which was most of the CPU of a MariaDB
    list's answer.
    """
    if connection.dialect.name in ("mysql", "mariadb"):
        as_json = _json_object_statement(statement, connection.dialect)
        if as_json is not None:
            return _json_object_rows(connection, as_json, params)
    rows = connection.execute(statement, params).all()
    if not rows:
        return []
    names = rows[0]._fields
    return [dict(zip(names, row)) for row in rows]


def _json_object_rows(connection, as_json, params):
    """The rows of a ``_json_object_statement`` as dicts, in the original columns' order."""
    statement, others, keys = as_json
    if not others:
        return orjson.loads("[" + ",".join(connection.execute(statement, params).scalars()) + "]")
    items = []
    for row in connection.execute(statement, params):
        item = orjson.loads(row[0])
        item.update(zip(others, row[1:]))
        items.append({key: item[key] for key in keys})
    return items


def aggregates_json_in_order(dialect):
    """Whether the database makes one JSON array of a statement's rows, in a given order
    (MariaDB 10.5's ``JSON_ARRAYAGG(... ORDER BY ...)``): rows listed beside a row (a
    call's appointments) then come in that row's statement, not a round trip of their own."""
    return (getattr(dialect, "is_mariadb", False)
            and (dialect.server_version_info or ()) >= (10, 5))


def json_array_column(statement, order_by, dialect, key):
    """``statement``'s rows as one JSON array of objects by column name, in ``order_by``
    order: a scalar subquery labelled ``key``, NULL when there are no rows. For a database
    that aggregates_json_in_order, with columns a JSON object holds as row_dicts_of reads
    them (ints, text, IsoInstant's text)."""
    pairs = []
    for column in statement.selected_columns:
        value = _json_value(column, dialect)
        if value is None:
            raise TypeError(f"{column.key} is not a value a JSON object of the row holds")
        pairs += [literal_column(f"'{column.key}'"), value]
    aggregate = aggregate_order_by(func.json_arrayagg(func.json_object(*pairs)), *order_by)
    return (statement.with_only_columns(aggregate, maintain_column_froms=True).order_by(None)
            .scalar_subquery().label(key))


class Base(DeclarativeBase):
    pass


log = logging.getLogger("gateway.db")

# Thread-local scoping is greenlet-local under gevent's monkey patching.
Session = scoped_session(sessionmaker(expire_on_commit=False))
# the engine the session is bound to (bind()), which read connections come from
_bound_engine = None
# the read connection a block of this request (greenlet) holds, for the blocks within it
_open_read = ContextVar("gateway_read_connection", default=None)

# what a database that went away raises (the pool then replaces the connection)
DATABASE_GONE = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)


# Connections a worker keeps open between requests. A gevent worker serves many requests
# at once, and a request holds its connection until its answer is made (a MariaDB query
# or a Redis call lets the others run meanwhile): with fewer kept than are in use, every
# request beyond them opened a connection and closed it again (for SQLite its PRAGMAs
# too; for MariaDB a handshake), about a tenth of an uncached answer's CPU under load.
KEPT_CONNECTIONS = 20
# more, opened and closed as needed, up to a worker's limit on the server's connections
EXTRA_CONNECTIONS = 10


def make_engine(url):
    if url.startswith("sqlite"):
        path = make_url(url).database
        pool = {}   # an in-memory database lives in its one connection (SingletonThreadPool)
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            pool = {"pool_size": KEPT_CONNECTIONS, "max_overflow": EXTRA_CONNECTIONS}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
        return engine
    engine = create_engine(url, pool_recycle=280, pool_size=KEPT_CONNECTIONS,
                           max_overflow=EXTRA_CONNECTIONS)
    ping_when_idle(engine)
    return engine


# A connection back in the pool for less than this is taken as it is, one idle for
# longer is pinged first. SQLAlchemy's pool_pre_ping pinged every checkout: a round trip
# to MariaDB on every request. A server that restarts under traffic fails the requests
# in flight (503), and SQLAlchemy then replaces every connection of the pool.
IDLE_BEFORE_PING = 5.0


def ping_when_idle(engine, idle=IDLE_BEFORE_PING, clock=time.monotonic):
    """Pessimistic disconnect handling through the pool's checkout event (a
    DisconnectionError there makes the pool replace the connection), for connections
    idle longer than ``idle`` seconds."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):
        record.info["returned_at"] = clock()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        returned_at = record.info.get("returned_at")
        if returned_at is None or clock() - returned_at < idle:   # new, or just used
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:
            raise exc.DisconnectionError("the connection did not answer a ping")


def end_session():
    """End this request's (greenlet's) session, even when the database went away under
    it: the next one then starts with a fresh session, and the pool has dropped the dead
    connection. Returns the error that ending it met, if any."""
    try:
        Session.remove()
    except DATABASE_GONE as error:
        Session.registry.clear()   # remove() stops at the failed rollback, before clearing
        return error
    return None


@contextmanager
def read_connection():
    """A connection for a read-only unit of statements, run in one transaction (on
    MariaDB, REPEATABLE READ: one snapshot for all of them).

    In a request that already has a session (a write, or the authentication stage
    reading a credential), the reads join the session's transaction, so they see its
    own writes. A block within another uses the outer one's connection (one snapshot,
    one checkout). Otherwise the connection comes straight from the pool and goes back
    when the block ends: an ORM session set up and torn down around Core statements
    cost about as much as running one of them.
    """
    if Session.registry.has():
        yield Session.connection()
        return
    outer = _open_read.get()
    if outer is not None:
        yield outer
        return
    connection = _bound_engine.connect()
    token = _open_read.set(connection)
    try:
        yield connection
    finally:
        _open_read.reset(token)
        try:
            connection.close()   # ends the read transaction: a rollback
        except DATABASE_GONE as error:
            # what was read stands; the pool has dropped the dead connection
            log.warning("database unreachable while ending a read: %s", type(error).__name__)


def bound_engine():
    """The engine the session is bound to, for work done on connections of its own."""
    return _bound_engine


def bind(engine):
    global _bound_engine
    Session.remove()
    Session.configure(bind=engine)
    _bound_engine = engine


def union_row_dicts_of(connection, statement, params):
    """``row_dicts_of`` for ``statement`` selecting the columns of a UNION (ALL) of
    selects, each of which selects under every column a table column or a NULL of the
    column's type (a feed merged from several tables). Such a column holds a table
    column's values, so on MariaDB its row is one JSON object as a table's is; an
    expression's column (an aggregate, a computed value) must not be one of them."""
    if connection.dialect.name in ("mysql", "mariadb"):
        as_json = _json_object_statement(statement, connection.dialect, _union_json_value)
        if as_json is not None:
            return _json_object_rows(connection, as_json, params)
    return row_dicts_of(connection, statement, params)


@lru_cache(maxsize=32)
def _counts_json_statement(statement):
    """One JSON object per row of ``statement``, selected from it as a derived table (its
    GROUP BY may name a label of its columns)."""
    rows = statement.subquery()
    pairs = []
    for column in rows.c:
        pairs += [literal_column(f"'{column.key}'"), column]
    return rows.select().with_only_columns(func.json_object(*pairs))


def count_rows_of(connection, statement, params):
    """The rows of ``statement``, whose columns are counts and sums of integers (each
    labelled with its key), as dicts by column name, in no particular order, for a caller
    that makes an int of each value (a SUM over no rows is None).

    On MariaDB each row comes as one JSON object made by the server, read by orjson: a
    row of ten figures cost PyMySQL ten column descriptions, parsed in Python. A SUM
    there is a JSON number, which orjson reads as an int, where PyMySQL makes a Decimal.
    """
    if connection.dialect.name in ("mysql", "mariadb"):
        rows = connection.execute(_counts_json_statement(statement), params).scalars()
        return orjson.loads("[" + ",".join(rows) + "]")
    return [dict(row._mapping) for row in connection.execute(statement, params)]
