"""Monitoring plans: proposals, their lines per group, and the audit trail of edits and approvals.

The tables of ``serving.plan_store`` (issue 18), written out here so the revision stays what it
is when that module changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitoring_plans",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("product_level", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("approved_at", UTC_TIME, nullable=True),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_monitoring_plans_year_status", "monitoring_plans", ["year", "status"])
    op.create_table(
        "monitoring_plan_lines",
        sa.Column("plan_id", sa.String(40), sa.ForeignKey("monitoring_plans.id"), primary_key=True),
        sa.Column("group_id", sa.String(120), primary_key=True),
        sa.Column("proposed_quota", sa.Integer, nullable=False),
        sa.Column("quota", sa.Integer, nullable=False),
        sa.Column("volume", sa.Float, nullable=False),
        sa.Column("line", sa.JSON, nullable=False),
    )
    op.create_table(
        "monitoring_plan_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.String(40), sa.ForeignKey("monitoring_plans.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_monitoring_plan_events_plan", "monitoring_plan_events", ["plan_id"])


def downgrade() -> None:
    op.drop_table("monitoring_plan_events")
    op.drop_table("monitoring_plan_lines")
    op.drop_table("monitoring_plans")
