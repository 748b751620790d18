"""Logical backups of the whole database into the file store, and their restore.

``gateway backup`` reads every table of the models inside one read transaction (a
consistent snapshot: MariaDB's START TRANSACTION WITH CONSISTENT SNAPSHOT, SQLite's
read transaction under WAL), writes gzip-compressed JSON lines to a temporary file and
hands that to the store, so neither the dump nor the database is held in memory. A dump
is named by the instant it was taken (``backups/gateway-<UTC time>.jsonl.gz``); the
newest ``files.backups_keep`` (policy) are kept.

A dump is one header line (format, schema revision, dialect, time), then per table a
line ``{"table", "columns"}`` followed by one JSON array per row, and a last line with
the row counts. Dates are ISO 8601 strings; JSON columns stay JSON. Being logical, a
dump taken on SQLite restores on MariaDB and back.
"""
import datetime as dt
import gzip
import io
import json
import logging
import re
import tempfile

from sqlalchemy import func, inspect, select, text

from .db import Base, UTCDateTime, utcnow

log = logging.getLogger("gateway.backups")
FORMAT = "voice-gateway-backup"
VERSION = 1
PREFIX = "backups/"
NAME_PATTERN = re.compile(r"^gateway-\d{8}T\d{6}\d{3}Z\.jsonl\.gz$")
BATCH = 1000


class BackupError(Exception):
    """A dump that cannot be taken or restored; the message says why."""


def backup_name(now):
    return f"gateway-{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z.jsonl.gz"


def schema_revision(connection):
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def begin_snapshot(connection):
    """One read transaction that sees the database as it was when it began."""
    if connection.dialect.name == "mysql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        connection.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")
        # the snapshot starts with the first read, not with BEGIN: read now
        connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").all()


def encoded(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def write_dump(connection, out, now):
    """Write the dump of everything ``connection`` sees to the binary file ``out``."""
    counts = {}
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:
        def line(document):
            packed.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
            packed.write(b"\n")
        line({"format": FORMAT, "version": VERSION, "revision": schema_revision(connection),
              "dialect": connection.dialect.name, "created_at": now.isoformat()})
        for table in Base.metadata.sorted_tables:
            columns = [column.name for column in table.columns]
            line({"table": table.name, "columns": columns})
            rows = connection.execution_options(yield_per=BATCH).execute(
                select(table).order_by(*table.primary_key.columns))
            counts[table.name] = 0
            for row in rows:
                line([encoded(value) for value in row])
                counts[table.name] += 1
        line({"end": True, "rows": counts})
    return counts


def take_backup(engine, store, keep, now=None):
    """Dump the database into ``store``; keep the newest ``keep`` dumps. Returns the name."""
    now = now or utcnow()
    name = backup_name(now)
    with tempfile.TemporaryFile(prefix="gateway-backup-") as spool:
        with engine.connect() as connection:
            begin_snapshot(connection)
            try:
                counts = write_dump(connection, spool, now)
            finally:
                connection.rollback()
        spool.seek(0)
        size = store.save(PREFIX + name, spool, "application/gzip")
    log.info("backup written", extra={"backup": name, "bytes": size, "rows": sum(counts.values())})
    prune(store, keep)
    return name


def list_backups(store):
    """The dumps in the store, oldest first (their names sort by time)."""
    return [item for item in store.list(PREFIX) if NAME_PATTERN.match(item.key[len(PREFIX):])]


def prune(store, keep):
    for item in list_backups(store)[:-keep]:
        store.delete(item.key)
        log.info("old backup deleted", extra={"backup": item.key[len(PREFIX):]})


# --- restore ---------------------------------------------------------------------------

def decoder_for(column):
    if isinstance(column.type, UTCDateTime):
        return lambda value: None if value is None else dt.datetime.fromisoformat(value)
    return lambda value: value


def table_rows(engine):
    """{table: row count} of the models' tables that exist."""
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar()
                for table in Base.metadata.sorted_tables if table.name in existing}


def restore_backup(engine, store, name, force=False, upgrade=None):
    """Load the dump ``name`` into the database of ``engine``, which must be empty (no
    table, or only empty ones) unless ``force``, which deletes every row first.
    ``upgrade()`` creates the schema when the database has none."""
    if not NAME_PATTERN.match(name):
        raise BackupError(f"{name!r} is not a backup name (see gateway backup --list)")
    with store.open(PREFIX + name) as raw:   # FileMissing first: an unknown name changes nothing
        if not table_rows(engine) and upgrade is not None:
            upgrade()
        occupied = {table: count for table, count in table_rows(engine).items() if count}
        if occupied and not force:
            raise BackupError("the database is not empty (" + ", ".join(
                f"{table}: {count} rows" for table, count in sorted(occupied.items())) +
                "); restore into an empty database, or pass --force to replace its rows")
        with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked, engine.begin() as connection:
            lines = io.TextIOWrapper(unpacked, encoding="utf-8")
            check_header(json.loads(next(lines)), connection)
            if occupied:
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
            counts = load_tables(connection, lines)
    log.info("backup restored", extra={"backup": name, "rows": sum(counts.values())})
    return counts


def check_header(header, connection):
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise BackupError("not a gateway backup of a version this gateway reads")
    here = schema_revision(connection)
    if header.get("revision") and here and header["revision"] != here:
        raise BackupError(f"the dump's schema revision is {header['revision']}, the database's "
                          f"is {here}: restore with the gateway version that took it")


def load_tables(connection, lines):
    counts, table, decoders, columns, batch = {}, None, None, None, []

    def flush():
        if batch:
            connection.execute(table.insert(), batch)
            batch.clear()
    for raw in lines:
        document = json.loads(raw)
        if isinstance(document, list):
            batch.append({name: decode(value) for name, decode, value in zip(columns, decoders, document)})
            counts[table.name] += 1
            if len(batch) >= BATCH:
                flush()
        elif "table" in document:
            flush()
            table = Base.metadata.tables.get(document["table"])
            if table is None:
                raise BackupError(f"the dump has a table this gateway does not know: {document['table']}")
            columns = document["columns"]
            decoders = [decoder_for(table.columns[name]) for name in columns]
            counts[table.name] = 0
        elif document.get("end"):
            flush()
            if document["rows"] != counts:
                raise BackupError("the dump's row counts do not match its rows: it is damaged")
            return counts
    raise BackupError("the dump ends early: it is incomplete")
