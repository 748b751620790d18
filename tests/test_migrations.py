"""Alembic migrations build the schema the models describe, on SQLite and on MariaDB."""
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway_app.db import Base
from gateway_app.migrate import upgrade


def column_names(index):
    return [getattr(expression, "element", expression).name for expression in index.expressions]


def without_sort_order(diff):
    """The differences, less an index removed and added again under the same name and
    columns: neither dialect's reflection reports a column's sort order (which
    descending_columns checks instead), so alembic sees a descending column as another."""
    removed = {item[1].name: item[1] for item in diff if item[0] == "remove_index"}
    added = {item[1].name: item[1] for item in diff if item[0] == "add_index"}
    same = {name for name in removed.keys() & added.keys()
            if column_names(removed[name]) == column_names(added[name])}
    return [item for item in diff
            if not (item[0] in ("remove_index", "add_index") and item[1].name in same)]


def schema_differences(url):
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return without_sort_order(diff)


def descending_in_models():
    """{index name: its descending columns} of the models' indexes that have one."""
    found = {}
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            columns = [expression.element.name for expression in index.expressions
                       if getattr(expression, "modifier", None) is sqlalchemy.sql.operators.desc_op]
            if columns:
                found[index.name] = columns
    return found


def descending_columns(url, index_names):
    """{index name: its descending columns}, as the database keeps them."""
    engine = sqlalchemy.create_engine(url)
    found = {}
    with engine.connect() as conn:
        for name in index_names:
            if engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(f"PRAGMA index_xinfo('{name}')").mappings()
                found[name] = [row["name"] for row in rows if row["key"] and row["desc"]]
            else:
                rows = conn.exec_driver_sql("SELECT column_name, collation FROM information_schema.statistics "
                                            "WHERE table_schema = DATABASE() AND index_name = %s "
                                            "ORDER BY seq_in_index", (name,)).all()
                found[name] = [column for column, collation in rows if collation == "D"]
    engine.dispose()
    return found


def test_sqlite_migrations_match_models(tmp_path):
    url = f"sqlite:///{tmp_path}/migrated.db"
    upgrade(url)
    assert schema_differences(url) == []
    expected = descending_in_models()
    assert expected   # the customers list's index
    assert descending_columns(url, expected) == expected
    upgrade(url)  # idempotent: a second release step is harmless


@pytest.mark.mysql
def test_mariadb_migrations_match_models(mysql_database):
    upgrade(mysql_database)
    assert schema_differences(mysql_database) == []
    expected = descending_in_models()
    assert descending_columns(mysql_database, expected) == expected
