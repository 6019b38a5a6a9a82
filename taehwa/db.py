"""The metadata database (SQLAlchemy Core): SQLite in the data directory by default, PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("retention_days", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("unit", String(64), nullable=True),
    Column("description", Text, nullable=True),
    Column("eng_low", Float, nullable=True),
    Column("eng_high", Float, nullable=True),
    Column("interval_s", Float, nullable=True),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant", "name", name="uq_tags_tenant_name"),
)


def make_engine(url: str) -> Engine:
    """Create the engine and the schema; SQLite gets WAL mode so readers in other processes never block."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    metadata.create_all(engine)
    return engine
