"""The metadata schema is kept by Alembic: the migrations build exactly the schema the code declares, a database
made before migrations existed is brought forward, `taehwa db` reports and upgrades, and a shared (PostgreSQL)
database that is behind refuses to open with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from taehwa import migrate
from taehwa.core.errors import Unavailable
from taehwa.db import engine_for, metadata
from taehwa.migrate import make_engine


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def test_migrations_build_the_declared_schema(tmp_path: Path) -> None:
    """Upgrading an empty database step by step gives what create_all gives (what a new database gets)."""
    engine = engine_for(_url(tmp_path, "stepwise.sqlite"))
    with engine.begin() as c:
        cfg = migrate._config(c)
        from alembic import command

        command.upgrade(cfg, "head")
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
        assert diff == [], diff
        assert migrate.current(c) == migrate.head()
    engine.dispose()


def test_a_database_from_before_migrations_is_brought_forward(tmp_path: Path) -> None:
    url = _url(tmp_path, "old.sqlite")
    old = engine_for(url)
    before = [t for name, t in metadata.tables.items() if name not in ("challenges", "submissions")]
    metadata.create_all(old, tables=before)  # as the releases before migrations made it
    with old.begin() as c:
        c.execute(sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', '2024-01-01')"))
    engine = make_engine(url)  # SQLite: brought up to date on opening
    with engine.connect() as c:
        assert migrate.current(c) == migrate.head()
        assert {"challenges", "submissions"} <= set(sa.inspect(c).get_table_names())
        assert c.execute(sa.text("SELECT name FROM tenants")).scalar_one() == "Acme"  # nothing lost
    engine.dispose()
    old.dispose()


def test_db_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taehwa.cli.main import app

    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TAEHWA_DATABASE_URL", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["db", "status"])
    assert r.exit_code == 0 and '"revision": null' in r.stdout
    r = runner.invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0 and f"revision {migrate.head()} (was empty)" in r.stdout
    r = runner.invoke(app, ["db", "upgrade"])
    assert "already up to date" in r.stdout
    assert '"up_to_date": true' in runner.invoke(app, ["db", "status"]).stdout
    monkeypatch.setenv("TAEHWA_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    r = runner.invoke(app, ["db", "status"])
    assert r.exit_code != 0 and "cannot reach the metadata database" in r.output


def test_a_shared_database_behind_the_code_refuses_to_open(pg_server: object, tmp_path: Path) -> None:
    """On PostgreSQL (several workers share it) only `taehwa db upgrade` changes the schema."""
    if pg_server is None:
        pytest.skip("runs against PostgreSQL (TAEHWA_TEST_DATABASE=postgresql)")
    fresh = make_engine(pg_server.database(empty=True))  # type: ignore[attr-defined]
    assert migrate.status(fresh)["up_to_date"]  # an empty database gets the newest schema at once
    fresh.dispose()
    url = pg_server.database(empty=True)  # type: ignore[attr-defined]
    engine = engine_for(url)
    with engine.begin() as c:
        from alembic import command

        command.upgrade(migrate._config(c), "0001")
    with pytest.raises(Unavailable, match="taehwa db upgrade"):
        make_engine(url)
    assert migrate.upgrade(engine) == ("0001", migrate.head())
    make_engine(url).dispose()  # opens now
    engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    """`migrate.head()` reads the scripts' revision lines without Alembic; Alembic's own reading agrees."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.SCRIPTS))
    assert migrate.head() == ScriptDirectory.from_config(cfg).get_current_head()
