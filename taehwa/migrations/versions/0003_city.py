"""The city: companies' consents to the city office, the city's policy (k, privacy, quotas), released aggregates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "city_consents" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "city_consents",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("site", sa.String(length=63), nullable=False),
        sa.Column("shares", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant", "site"),
    )
    op.create_table(
        "city_policy",
        sa.Column("key", sa.String(length=127), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "city_releases",
        sa.Column("figure", sa.String(length=63), nullable=False),
        sa.Column("members_key", sa.String(length=64), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("releases", sa.Integer(), nullable=False),
        sa.Column("epsilon_spent", sa.Float(), nullable=False),
        sa.Column("last", sa.JSON(), nullable=True),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("figure", "members_key"),
    )


def downgrade() -> None:
    op.drop_table("city_releases")
    op.drop_table("city_policy")
    op.drop_table("city_consents")
