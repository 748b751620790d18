"""Alembic driven from code, so `gateway db upgrade` needs no alembic.ini."""
import os

from alembic import command
from alembic.config import Config

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def alembic_config(url=None):
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url=None, revision="head"):
    command.upgrade(alembic_config(url), revision)


def revision(message, url=None):
    command.revision(alembic_config(url), message=message, autogenerate=True)
