"""Alembic migrations build the schema the models describe, on SQLite and on MariaDB."""
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway_app.db import Base
from gateway_app.migrate import upgrade


def schema_differences(url):
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_sqlite_migrations_match_models(tmp_path):
    url = f"sqlite:///{tmp_path}/migrated.db"
    upgrade(url)
    assert schema_differences(url) == []
    upgrade(url)  # idempotent: a second release step is harmless


@pytest.mark.mysql
def test_mariadb_migrations_match_models(mysql_database):
    upgrade(mysql_database)
    assert schema_differences(mysql_database) == []
