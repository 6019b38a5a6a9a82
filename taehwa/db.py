"""The metadata database (SQLAlchemy Core): SQLite in the data directory by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
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

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("platform_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("source", String(255), nullable=True),
    Column("tenant", String(63), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("grantee", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("tags", JSON, nullable=False),  # exact names, or prefixes written as "unit/*"
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("pseudonymise", Boolean, nullable=False),
    Column("scale", JSON, nullable=True),  # {"a": …, "b": …}: values are shared as a·v + b
    Column("salt", String(64), nullable=False),
    Column("purpose", Text, nullable=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_grants_grantee", "grantee"),
    Index("ix_grants_owner", "owner"),
)

# The twin, versioned: each change makes a new version; a row is current from v_from until v_to (exclusive).
twin_versions = Table(
    "twin_versions",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(255), nullable=True),
    Column("summary", Text, nullable=False),
)

twin_types = Table(
    "twin_types",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("v_from", Integer, nullable=False),
    Column("v_to", Integer, nullable=True),
    Index("ix_twin_types_current", "tenant", "v_to"),
)

twin_assets = Table(
    "twin_assets",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("record", JSON, nullable=False),
    Column("v_from", Integer, nullable=False),
    Column("v_to", Integer, nullable=True),
    Index("ix_twin_assets_current", "tenant", "v_to"),
    Index("ix_twin_assets_path", "tenant", "path"),
)

twin_relations = Table(
    "twin_relations",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(1024), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("v_from", Integer, nullable=False),
    Column("v_to", Integer, nullable=True),
    Index("ix_twin_relations_current", "tenant", "v_to"),
)


# --- connectors ----------------------------------------------------------------------------------------------------
connectors = Table(
    "connectors",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("protocol", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # the checked document, JSON
    Column("created_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# --- the model lab -------------------------------------------------------------------------------------------------
labels = Table(
    "labels",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("asset", String(1024), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("start", BigInteger, nullable=False),  # µs since the epoch, UTC
    Column("end", BigInteger, nullable=True),  # null: a point in time (a lab sample, a failure)
    Column("value", Float, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_labels_tenant_asset", "tenant", "asset", "start"),
)

lab_runs = Table(
    "lab_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("mode", String(16), nullable=False),  # train | evaluate
    Column("task", String(32), nullable=False),
    Column("model_kind", String(64), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("baseline", JSON, nullable=False),
    Column("production", JSON, nullable=True),  # the production version's figures on the same validation data
    Column("mlflow_run", String(64), nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Float, nullable=False),
    Index("ix_lab_runs_tenant", "tenant", "created_at"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("asset_type", String(255), nullable=True),
    Column("run_id", String(32), nullable=False),
    Column("stage", String(16), nullable=False),  # candidate | production | archived
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_events = Table(
    "model_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(32), nullable=False),  # register | promote | rollback | refused
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Column("detail", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


# --- live: deployments, alerts, notifications ----------------------------------------------------------------------
deployments = Table(
    "deployments",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("model", String(255), nullable=False),
    Column("version", Integer, nullable=True),  # null: whatever version is in production
    Column("target", JSON, nullable=False),  # {"asset": path} | {"asset_type": name} | {"under": path}
    Column("params", JSON, nullable=False),  # outputs, every_s, wait_s, hold_s
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("spec", JSON, nullable=False),  # the checked rule document
    Column("created_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("rule", String(63), nullable=False),
    Column("asset", String(1024), nullable=True),
    Column("tag", String(1024), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # active | acknowledged | resolved
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("chain", JSON, nullable=False),  # the rule, the data window, the model version: why it was raised
    Column("count", Integer, nullable=False),  # raised again while open: folded into this one
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("shelved_until", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Index("ix_alerts_tenant_state", "tenant", "state"),
    Index("ix_alerts_tenant_asset", "tenant", "asset", "raised_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column(
        "alert_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("alerts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("action", String(16), nullable=False),  # raised | folded | acknowledged | shelved | unshelved | resolved
    Column("actor", String(128), nullable=False),
    Column("note", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_events_alert", "alert_id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("events", JSON, nullable=False),  # which alert actions it receives
    Column("secret", String(255), nullable=True),  # HMAC-SHA256 key for the signature header
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("webhook", String(63), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_pending", "delivered_at", "next_at"),
)

# --- the academy ---------------------------------------------------------------------------------------------------
challenges = Table(
    "challenges",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("owner", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("info", JSON, nullable=False),  # signals, classes, rows per part, the sharing grant behind it
    Column("closes_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),  # closed early by its owner
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("challenge", String(63), ForeignKey("challenges.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # predictions | spec | python
    Column("label", String(255), nullable=True),
    Column("reference", Boolean, nullable=False, default=False),  # the platform's own baseline entry
    Column("state", String(16), nullable=False),  # queued | running | done
    Column("verdict", String(32), nullable=True),
    Column("message", Text, nullable=True),
    Column("log", Text, nullable=True),
    Column("public_score", Float, nullable=True),
    Column("final_score", Float, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("sandbox", JSON, nullable=True),
    Column("seconds", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_submissions_challenge_user", "challenge", "user_id", "created_at"),
)

# --- the city (taehwa/city): what companies share with the city office, its policy, the aggregates it released -----
city_consents = Table(
    "city_consents",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("site", String(63), primary_key=True),
    Column("shares", JSON, nullable=False),  # what of the site the city map shows: map, state, rate, models, …
    Column("figures", JSON, nullable=False),  # the cross-company figures the site contributes to
    Column("set_by", String(255), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

city_policy = Table(
    "city_policy",
    metadata,
    Column("key", String(127), primary_key=True),  # k, dp, quota:<tenant>
    Column("value", JSON, nullable=False),
    Column("set_by", String(255), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

city_releases = Table(
    "city_releases",
    metadata,
    Column("figure", String(63), primary_key=True),
    Column("members_key", String(64), primary_key=True),  # sha256 of the sorted contributing tenants
    Column("members", JSON, nullable=False),
    Column("groups", JSON, nullable=False),  # the groups (dimension=value) this set was released as
    Column("releases", Integer, nullable=False),
    Column("epsilon_spent", Float, nullable=False),
    Column("last", JSON, nullable=True),  # the last answer (a noised one is given again for the same inputs)
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
)

# --- analytics (taehwa/analytics): event frames of assets (templates, API calls, data-quality findings) ----------
analytics_events = Table(
    "analytics_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("asset", String(1024), nullable=False),
    Column("template", String(127), nullable=False),  # a type's event template, quality.<check>, or an API name
    Column("kind", String(16), nullable=False),  # template | quality | manual
    Column("start_us", BigInteger, nullable=False),  # µs since the epoch, UTC
    Column("end_us", BigInteger, nullable=True),  # null while open
    Column("duration_s", Float, nullable=True),
    Column("close_reason", String(16), nullable=True),  # end | max_duration | api
    Column("stats", JSON, nullable=False),  # {signal: {min, max, mean, integral, start, end}} at close
    Column("info", JSON, nullable=False),  # template version, tag of a quality finding, a note
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_analytics_events_time", "tenant", "start_us"),
    # covering: a search by template filters duration, end and asset in the index before reading a row
    Index("ix_analytics_events_template", "tenant", "template", "start_us", "duration_s", "end_us", "asset"),
    Index("ix_analytics_events_asset", "tenant", "asset", "start_us"),
    Index("ix_analytics_events_duration", "tenant", "duration_s"),
)

# reference profiles of event templates (a golden event or the median of chosen ones), scored against live events
analytics_references = Table(
    "analytics_references",
    metadata,
    Column("tenant", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("type", String(127), primary_key=True),
    Column("template", String(127), primary_key=True),
    Column("signal", String(127), nullable=False),
    Column("events", JSON, nullable=False),  # the ids of the events it was made of
    Column("step_us", BigInteger, nullable=False),
    Column("band", Float, nullable=False),
    Column("profile", JSON, nullable=False),  # {median, low, high}: one value per step from the event's start
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def engine_for(url: str) -> Engine:
    """An engine for the metadata database, as it is: SQLite gets WAL mode so readers in other processes never
    block; a PostgreSQL URL without a driver uses psycopg 3 (the driver Taehwa ships with)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        _private_file(make_url(url).database)
    elif url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def _private_file(path: str | None) -> None:
    """Make a new SQLite file readable by its owner only, whatever the umask (it holds password and token hashes
    and the audit log); SQLite gives its WAL and shared-memory files the same mode."""
    if not path or path == ":memory:" or os.path.exists(path):
        return
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
