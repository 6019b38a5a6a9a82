"""The metadata database's schema, kept by Alembic migrations (`taehwa/migrations`): a new database is created at
the newest revision, an embedded SQLite one is brought up to it when Taehwa opens it, and a shared PostgreSQL one
is upgraded only by `taehwa db upgrade` (several workers on several machines must not race to change it)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from taehwa.core.errors import Unavailable
from taehwa.db import engine_for, metadata

if TYPE_CHECKING:  # Alembic is imported only to change the schema (opening a current database reads one row)
    from alembic.config import Config

SCRIPTS = Path(__file__).parent / "migrations"
BEFORE_MIGRATIONS = "0001"  # what a database made before migrations existed (it has tables, no version) is at
_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*['"]?([\w-]+)['"]?\s*$""", re.M)
_LOCK_KEY = 0x7461656877610001  # PostgreSQL advisory lock: one migrator at a time across processes and machines


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head() -> str:
    """The newest revision this Taehwa knows: the one no migration revises, read from the scripts' own top-level
    `revision = "…"` and `down_revision = "…"` lines (tests/test_migrations.py holds it equal to Alembic's reading)
    without importing Alembic or parsing the scripts, which every process that opens the platform would pay for."""
    revised: dict[str, str | None] = {}
    for script in (SCRIPTS / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(script.read_text()))
        down = found.get("down_revision")
        revised[found["revision"]] = down if down and down != "None" else None
    heads = set(revised) - {d for d in revised.values() if d is not None}
    assert len(heads) == 1, f"the migrations have {len(heads)} heads: {sorted(heads)}"
    return heads.pop()


def current(connection: Connection) -> str | None:
    """The database's revision (Alembic's own table, read directly); None when it has no schema yet."""
    names = inspect(connection).get_table_names()
    rev = None
    if "alembic_version" in names:
        rev = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if rev is None and "tenants" in names:
        return BEFORE_MIGRATIONS
    return rev


def status(engine: Engine) -> dict[str, Any]:
    """Where the database stands: its revision, the newest one, and whether it is up to date."""
    with engine.connect() as c:
        rev = current(c)
    return {
        "url": engine.url.render_as_string(hide_password=True),
        "revision": rev,
        "head": head(),
        "up_to_date": rev == head(),
    }


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision (under a lock on PostgreSQL); (revision before, after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        before = current(c)
        cfg = _config(c)
        if before is None:  # a new database: the schema at once, then marked as at the newest revision (Alembic's
            metadata.create_all(c)  # recipe; a test holds the migrations to the same schema)
            command.stamp(cfg, "head")
            return before, head()
        if before == BEFORE_MIGRATIONS and MigrationContext.configure(c).get_current_revision() is None:
            command.stamp(cfg, BEFORE_MIGRATIONS)
        if before != head():
            command.upgrade(cfg, "head")
    return before, head()


def prepare(engine: Engine) -> None:
    """On opening: create a new database's schema, upgrade an embedded SQLite one, and refuse a shared database
    that is behind (or ahead of) this Taehwa with what to do about it."""
    with engine.connect() as c:
        rev = current(c)
    if rev == head():
        return
    if rev is None or engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    raise Unavailable(
        f"the metadata database at {where} is at schema revision {rev}; this Taehwa needs {head()}: "
        "run `taehwa db upgrade` (once, from one machine) and start again",
        where="database",
    )


def make_engine(url: str) -> Engine:
    """The engine, with the schema made current (`prepare`)."""
    engine = engine_for(url)
    try:
        prepare(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
