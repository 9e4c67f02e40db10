"""Alembic's env.py as `alembic init` writes it, reduced: online and offline (--sql) modes,
the URL from ORM_TEST_URL."""
import os

from alembic import context
from sqlalchemy import create_engine

URL = os.environ["ORM_TEST_URL"]


def run_migrations_offline():
    context.configure(url=URL, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(URL)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
