"""Alembic environment: the URL comes from the gateway's settings (or the caller)."""
from alembic import context
from sqlalchemy import pool

from gateway_app import models  # noqa: F401  (registers the tables)
from gateway_app.db import Base, make_engine
from gateway_app.settings import from_environment

config = context.config
target_metadata = Base.metadata


def database_url():
    return config.get_main_option("sqlalchemy.url") or from_environment()["SQLALCHEMY_DATABASE_URL"]


def run_migrations_offline():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
