"""Baseline: the serving schema as it stood when migrations came in (2026-12-01).

A fresh database gets every table. A database made before migrations (by ``create_all`` and the
start-up ``ALTER TABLE ... ADD COLUMN`` of earlier releases, possibly without the tables of
features it never used) is adopted in place: missing tables and indexes are created and the
nullable columns added by later releases are added; rows are kept. A column that is missing and
not nullable cannot be adopted and stops the upgrade.

The tables are written out here, not taken from the modules that declare them today, so this
revision stays what it is when those modules change (later changes are later revisions).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Same DDL as serving.db.UTCDateTime (a TypeDecorator over this type).
UTC_TIME = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIERS = ("high", "elevated", "normal", "low")

baseline = sa.MetaData()

sa.Table(
    "score_audit",
    baseline,
    sa.Column("id", ROW_ID, primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("item", sa.Integer, nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("declaration_id", sa.String(128), nullable=False, index=True),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("snapshot_as_of", UTC_TIME, nullable=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("decision_reason", sa.String(64), nullable=False),
    sa.Column("monitoring_selected", sa.Boolean, nullable=False),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("top_reasons", sa.JSON, nullable=False),
    sa.Column("declaration_json", sa.Text, nullable=True),
    sa.Column("worker_id", sa.String(32), nullable=True),
    sa.Column("data_quality", sa.JSON, nullable=True),
    sa.UniqueConstraint("request_id", "item", name="uq_score_audit_request_item"),
)

sa.Table(
    "inspection_results",
    baseline,
    sa.Column("id", ROW_ID, primary_key=True),
    sa.Column("declaration_id", sa.String(128), nullable=False, unique=True),
    sa.Column("inspected_at", UTC_TIME, nullable=False),
    sa.Column("selection", sa.String(16), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("hazard_type", sa.String(32), nullable=True),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("disposal", sa.String(16), nullable=True),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("worker_id", sa.String(32), nullable=True),
    sa.Column("data_quality", sa.JSON, nullable=True),
)

sa.Table(
    "api_keys",
    baseline,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("revoked_at", UTC_TIME, nullable=True),
)

sa.Table(
    "web_sessions",
    baseline,
    sa.Column("session_sha256", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("last_seen_at", UTC_TIME, nullable=False),
    sa.Column("ended_at", UTC_TIME, nullable=True),
    sa.Column("end_reason", sa.String(16), nullable=True),
)

sa.Table(
    "storage_probe",
    baseline,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("probed_at", UTC_TIME, nullable=False),
)

sa.Table(
    "warnings",
    baseline,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("subject_kind", sa.String(20), nullable=False),
    sa.Column("subject_key", sa.String(120), nullable=False),
    sa.Column("subject_label", sa.String(200), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("publication_type", sa.String(8), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("matters", sa.Text, nullable=False),
    sa.Column("hazard", sa.String(20), nullable=True),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("measures", sa.JSON, nullable=False),
    sa.Column("assessment", sa.JSON, nullable=False),
    sa.Column("as_of", UTC_TIME, nullable=False),
    sa.Column("proposed_at", UTC_TIME, nullable=False),
    sa.Column("proposed_by", sa.String(64), nullable=False),
    sa.Column("activated_at", UTC_TIME, nullable=True),
    sa.Column("lifted_at", UTC_TIME, nullable=True),
    sa.Column("updated_at", UTC_TIME, nullable=False),
    sa.Index("ix_warnings_status", "status"),
    sa.Index("ix_warnings_subject", "subject_kind", "subject_key"),
)

sa.Table(
    "warning_transitions",
    baseline,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(40), sa.ForeignKey("warnings.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("from_level", sa.Integer, nullable=True),
    sa.Column("to_level", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", UTC_TIME, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("evaluation", sa.JSON, nullable=True),
    sa.Index("ix_warning_transitions_warning", "warning_id"),
)

sa.Table(
    "enterprise_profiles",
    baseline,
    sa.Column("as_of", sa.String(10), primary_key=True),
    sa.Column("enterprise_id", sa.String(128), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("enterprise_type", sa.String(64)),
    sa.Column("region", sa.Text),
    sa.Column("risk_rank", sa.Integer, nullable=False),
    sa.Column("declarations", sa.Integer, nullable=False),
    sa.Column("expected_rate", sa.Double),
    sa.Column("max_probability", sa.Double),
    sa.Column("risk_tier", sa.String(16)),
    *(sa.Column(f"share_{t}", sa.Double) for t in TIERS),
    sa.Column("first_declared_at", UTC_TIME),
    sa.Column("last_declared_at", UTC_TIME),
    sa.Column("credit_rating", sa.String(32), nullable=False),
    sa.Column("reasons_up", sa.Text, nullable=False),
    sa.Column("reasons_down", sa.Text, nullable=False),
    sa.Column("previous_as_of", sa.String(10)),
    sa.Column("previous_expected_rate", sa.Double),
    sa.Column("expected_rate_delta", sa.Double),
    sa.Column("previous_risk_tier", sa.String(16)),
    sa.Column("risk_tier_change", sa.String(16), nullable=False),
    *(sa.Column(f"share_{t}_delta", sa.Double) for t in TIERS),
    sa.Column("warnings", sa.Text, nullable=False),
    sa.Index("ix_enterprise_profiles_rank", "as_of", "risk_rank"),
)

sa.Table(
    "rescore_runs",
    baseline,
    sa.Column("as_of", sa.String(10), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("period_start", UTC_TIME, nullable=False),
    sa.Column("period_end", UTC_TIME, nullable=False),
    sa.Column("declarations", sa.Integer, nullable=False),
    sa.Column("enterprises", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("written_at", UTC_TIME, nullable=False),
)


def _adopt(bind: sa.Connection, table: sa.Table) -> None:
    """Bring a table made before migrations to the baseline: add its missing nullable columns
    and indexes (``ALTER TABLE ... ADD COLUMN`` keeps every row)."""
    inspector = sa.inspect(bind)
    have = {c["name"] for c in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name in have:
            continue
        if not column.nullable:
            raise RuntimeError(
                f"cannot adopt {table.name}: the non-null column {column.name} is missing"
            )
        op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    indexes = {ix["name"] for ix in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(bind)


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for table in baseline.sorted_tables:
        if table.name in existing:
            _adopt(bind, table)
        else:
            table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(baseline.sorted_tables):
        table.drop(bind, checkfirst=True)
