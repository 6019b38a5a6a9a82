"""Alembic's environment for Taehwa's metadata database: the schema is `taehwa.db.metadata`; the connection is the
one `taehwa.migrate` hands over (SQLite in the data directory, or PostgreSQL by TAEHWA_DATABASE_URL)."""

from __future__ import annotations

from alembic import context

from taehwa.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: the URL from the ini / -x url=…
    from sqlalchemy import create_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    connection = create_engine(str(url)).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
