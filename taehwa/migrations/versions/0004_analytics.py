"""Analytics: event frames of assets (from event templates, API calls and data-quality checks).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "analytics_events" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "analytics_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("asset", sa.String(length=1024), nullable=False),
        sa.Column("template", sa.String(length=127), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_events_time", ["tenant", "start_us"], unique=False)
        batch_op.create_index(
            "ix_analytics_events_template",
            ["tenant", "template", "start_us", "duration_s", "end_us", "asset"],
            unique=False,
        )
        batch_op.create_index("ix_analytics_events_asset", ["tenant", "asset", "start_us"], unique=False)
        batch_op.create_index("ix_analytics_events_duration", ["tenant", "duration_s"], unique=False)


def downgrade() -> None:
    op.drop_table("analytics_events")
