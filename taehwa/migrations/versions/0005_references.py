"""Analytics: reference profiles of event templates (scored against running events live).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "analytics_references" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "analytics_references",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("type", sa.String(length=127), nullable=False),
        sa.Column("template", sa.String(length=127), nullable=False),
        sa.Column("signal", sa.String(length=127), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("step_us", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.Float(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant", "type", "template"),
    )


def downgrade() -> None:
    op.drop_table("analytics_references")
