"""db.row_dicts_of gives the dicts of a statement's rows exactly as the rows themselves
would (on MariaDB it has the server make each row one JSON object)."""
import datetime as dt

import pytest
import sqlalchemy
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, bindparam, select, type_coerce
from sqlalchemy.pool import NullPool

from gateway_app.db import IdType, IsoInstant, UTCDateTime, iso_instant, row_dicts_of

UTC = dt.timezone.utc
TEXTS = ['quote " backslash \\ slash / <tag> &', "new\nline\ttab\r\x00\x01\x1f\x7f",
         "é ü ß \u2028 \u2029 \U0001F600 中文", "", "   ", "null", "0", "{\"a\": 1}"]

metadata = MetaData()
things = Table("row_dict_things", metadata, Column("id", IdType, primary_key=True),
               Column("owner_id", Integer), Column("name", String(100)), Column("notes", Text),
               Column("at", UTCDateTime), Column("flag", Boolean))
owners = Table("row_dict_owners", metadata, Column("id", IdType, primary_key=True),
               Column("name", String(100)))


def rows_both_ways(engine):
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(owners.insert(), [{"id": 1, "name": "Ann"}])
            connection.execute(things.insert(), [
                {"id": n + 1, "owner_id": 1 if n % 2 else None, "name": text, "notes": text[::-1] or None,
                 "at": dt.datetime(2029, 10, 1, 12, n, n, tzinfo=UTC) if n % 3 else None, "flag": n % 2 == 0}
                for n, text in enumerate(TEXTS)] + [
                {"id": 2 ** 62, "owner_id": -7, "name": None, "notes": None, "at": None, "flag": None}])
        joined = things.outerjoin(owners, owners.c.id == things.c.owner_id)
        statements = [
            # ints, text, instants as text, a label: one JSON object per row on MariaDB
            select(things.c.id, things.c.owner_id, things.c.name, things.c.notes, iso_instant(things.c.at),
                   owners.c.name.label("owner_name")).select_from(joined)
            .where(things.c.id >= bindparam("from_id")).order_by(things.c.id.desc()).limit(bindparam("limit")),
            # a boolean and a datetime: read as the rows give them
            select(things.c.id, things.c.flag, things.c.at).where(things.c.id >= bindparam("from_id"))
            .order_by(things.c.id).limit(bindparam("limit")),
            # some of each: the others beside the object, every key in its place
            select(things.c.flag, things.c.id, things.c.at, things.c.name,
                   type_coerce(things.c.at, IsoInstant()).label("at_text"),
                   select(sqlalchemy.func.count(owners.c.id)).where(owners.c.id == things.c.owner_id)
                   .scalar_subquery().label("owners"), things.c.notes)
            .where(things.c.id >= bindparam("from_id")).order_by(things.c.id).limit(bindparam("limit")),
        ]
        params = {"from_id": 1, "limit": 100}
        with engine.connect() as connection:
            return [(row_dicts_of(connection, statement, params),
                     [dict(row._mapping) for row in connection.execute(statement, params)])
                    for statement in statements]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def check(results):
    for dicts, expected in results:
        assert len(expected) == len(TEXTS) + 1
        assert dicts == expected
        assert [list(item) for item in dicts] == [list(item) for item in expected]   # key order too
        assert [[type(value) for value in item.values()] for item in dicts] == \
            [[type(value) for value in item.values()] for item in expected]


def test_sqlite_rows_as_dicts(tmp_path):
    check(rows_both_ways(sqlalchemy.create_engine(f"sqlite:///{tmp_path}/things.db")))


def test_mariadb_rows_as_dicts_are_what_the_rows_give(mysql_database):
    check(rows_both_ways(sqlalchemy.create_engine(mysql_database, poolclass=NullPool)))


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_no_rows_are_an_empty_list(request, tmp_path, backend):
    url = request.getfixturevalue("mysql_database") if backend == "mysql" else f"sqlite:///{tmp_path}/things.db"
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    metadata.create_all(engine)
    try:
        with engine.connect() as connection:
            assert row_dicts_of(connection, select(things.c.id, things.c.name), {}) == []
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_mariadb_rows_of_expressions_other_than_table_columns_are_read_as_rows(mysql_database):
    """An aggregate of ints is a DECIMAL to PyMySQL (and would be an int in JSON): only
    table columns are made into JSON."""
    engine = sqlalchemy.create_engine(mysql_database, poolclass=NullPool)
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(things.insert(), [{"id": 1, "owner_id": 4}, {"id": 2, "owner_id": 5}])
        statement = select(sqlalchemy.func.sum(things.c.owner_id).label("total"), things.c.id.label("any_id")) \
            .group_by(things.c.id).order_by(things.c.id)
        with engine.connect() as connection:
            dicts = row_dicts_of(connection, statement, {})
            expected = [dict(row._mapping) for row in connection.execute(statement)]
        assert dicts == expected and [type(item["total"]) for item in dicts] == \
            [type(item["total"]) for item in expected]
    finally:
        metadata.drop_all(engine)
        engine.dispose()
