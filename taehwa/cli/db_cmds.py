"""`taehwa db …`: the metadata database's schema (SQLite in the data directory, or PostgreSQL by
TAEHWA_DATABASE_URL), kept by Alembic migrations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from taehwa.cli.common import fail, out
from taehwa.core.errors import TaehwaError, Unavailable

if TYPE_CHECKING:
    from sqlalchemy import Engine

db_app = typer.Typer(
    help="The metadata database: schema status and upgrades (Alembic migrations).", no_args_is_help=True
)


def _engine() -> Engine:
    from taehwa.core.settings import load_settings
    from taehwa.db import engine_for

    settings = load_settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return engine_for(settings.metadata_url)


@db_app.command("status")
def status() -> None:
    """The schema revision of the database and the one this Taehwa needs (JSON)."""
    from taehwa.migrate import status as schema_status

    try:
        engine = _engine()
        try:
            print(json.dumps(schema_status(engine), indent=1, ensure_ascii=False))
        finally:
            engine.dispose()
    except TaehwaError as exc:
        fail(exc)
    except Exception as exc:
        fail(Unavailable(f"cannot reach the metadata database: {exc}", where="database"))


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the schema to the newest revision. Run it once, from one machine, before starting upgraded workers;
    an embedded SQLite database is upgraded on opening anyway. Safe to run again: nothing to do is nothing done."""
    from taehwa.migrate import upgrade as schema_upgrade

    engine = _engine()
    try:
        before, after = schema_upgrade(engine)
    except Exception as exc:
        fail(Unavailable(f"the upgrade failed and was rolled back: {exc}", where="database"))
        return
    finally:
        engine.dispose()
    out.print(
        f"schema at revision {after}" + (f" (was {before or 'empty'})" if before != after else " (already up to date)")
    )
