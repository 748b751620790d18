"""Instants read as their ISO text (db.iso_instant) are what the answers showed of them,
and a list's rows are sent as they are only where the columns' types prove it
(services/serialization.py check_rows_dump_as_is)."""
import datetime as dt

import pytest
import sqlalchemy
from marshmallow import Schema, fields
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.pool import NullPool

from gateway_app.db import IdType, UTCDateTime, iso_instant
from gateway_app.services.serialization import check_rows_dump_as_is

UTC = dt.timezone.utc
INSTANTS = [dt.datetime(2029, 10, 1, 12, 0, tzinfo=UTC),
            dt.datetime(2029, 10, 1, 12, 0, 0, 5, tzinfo=UTC),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            dt.datetime(2030, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            None]

metadata = MetaData()
moments = Table("moments", metadata, Column("id", IdType, primary_key=True),
                Column("at", UTCDateTime), Column("label", String(20)))


def read_back(engine):
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(moments.insert(), [{"id": n + 1, "at": at} for n, at in enumerate(INSTANTS)])
        with engine.connect() as connection:
            as_text = connection.execute(select(iso_instant(moments.c.at)).order_by(moments.c.id)).scalars().all()
            as_datetimes = connection.execute(select(moments.c.at).order_by(moments.c.id)).scalars().all()
        return as_text, [None if at is None else at.isoformat() for at in as_datetimes]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_sqlite_instants_read_as_text_are_their_isoformat(tmp_path):
    as_text, expected = read_back(sqlalchemy.create_engine(f"sqlite:///{tmp_path}/moments.db"))
    assert as_text == expected
    assert expected[1].endswith(".000005+00:00") and expected[0] == "2029-10-01T12:00:00+00:00"


def test_mariadb_instants_read_as_text_are_their_isoformat(mysql_database):
    as_text, expected = read_back(sqlalchemy.create_engine(mysql_database, poolclass=NullPool))
    assert as_text == expected


def test_a_sqlite_instant_stored_in_another_text_form_reads_as_the_datetime_would(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/moments.db")
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO moments (id, at) VALUES (1, '2029-10-01 12:00:00')")
            assert connection.execute(select(iso_instant(moments.c.at))).scalar() == \
                connection.execute(select(moments.c.at)).scalar().isoformat() == "2029-10-01T12:00:00+00:00"
    finally:
        engine.dispose()


class Moment(Schema):
    id = fields.Integer()
    at = fields.DateTime(allow_none=True)
    label = fields.String(allow_none=True)


class Named(Schema):
    id = fields.Integer()
    name = fields.String()


class WithOwner(Schema):
    id = fields.Integer()
    owner = fields.Nested(Named, allow_none=True)


def test_rows_whose_columns_dump_as_they_are_pass_the_check():
    check_rows_dump_as_is(Moment, (moments.c.id, iso_instant(moments.c.at), moments.c.label))
    owner_name = moments.c.label.label("owner_name")
    check_rows_dump_as_is(WithOwner, (moments.c.id, owner_name), dropped=("owner_name",),
                          built={"owner": {"id": moments.c.id, "name": owner_name}})


@pytest.mark.parametrize("columns", [
    (moments.c.id, moments.c.at, moments.c.label),                       # a datetime, not its text
    (moments.c.id, iso_instant(moments.c.at)),                           # a field without its column
    (moments.c.id, iso_instant(moments.c.at), moments.c.label, moments.c.label.label("x")),  # a key too many
    (moments.c.id, iso_instant(moments.c.at), moments.c.id.label("label")),   # an int to a String field
])
def test_rows_the_schema_would_change_fail_the_check(columns):
    with pytest.raises(TypeError):
        check_rows_dump_as_is(Moment, columns)


def test_values_computed_in_python_are_checked_by_the_type_named():
    from gateway_app.db import IsoInstant
    check_rows_dump_as_is(Moment, (moments.c.id, moments.c.label), computed={"at": IsoInstant()})
    for wrong in ({"at": DateTime()}, {"at": Integer()}, {"at": IsoInstant(), "extra": Integer()}):
        with pytest.raises(TypeError):
            check_rows_dump_as_is(Moment, (moments.c.id, moments.c.label), computed=wrong)


def test_a_renamed_or_defaulted_field_fails_the_check():
    class Renamed(Schema):
        id = fields.Integer(data_key="ident")

    class Defaulted(Schema):
        id = fields.Integer(dump_default=0)

    for schema in (Renamed, Defaulted):
        with pytest.raises(TypeError):
            check_rows_dump_as_is(schema, (Column("id", Integer),))
