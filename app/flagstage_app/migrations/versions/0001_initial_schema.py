"""The initial schema: tenants, accounts, monthly metrics and revenue, documents, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TENANT = sa.String(128)
ACCOUNT = sa.String(128)
MONTH = sa.String(7)


def _account_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.account_id"]
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenants"),
    )
    op.create_table(
        "accounts",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("account_id", ACCOUNT, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("industry", sa.String(128), nullable=False),
        sa.Column("revenue", sa.Numeric(20, 2), nullable=False),
        sa.Column("revenue_month", MONTH, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", name="pk_accounts"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name="fk_accounts_tenant_id_tenants"
        ),
    )
    op.create_table(
        "account_metrics",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("account_id", ACCOUNT, nullable=False),
        sa.Column("month", MONTH, nullable=False),
        sa.Column("revenue_growth_pct", sa.Numeric(12, 4), nullable=False),
        sa.Column("active_users", sa.Integer(), nullable=False),
        sa.Column("support_tickets", sa.Integer(), nullable=False),
        sa.Column("nps", sa.Numeric(6, 2), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "month", name="pk_account_metrics"),
        _account_key(),
    )
    op.create_table(
        "monthly_revenue",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("account_id", ACCOUNT, nullable=False),
        sa.Column("month", MONTH, nullable=False),
        sa.Column("revenue", sa.Numeric(20, 2), nullable=False),
        sa.Column("growth_pct", sa.Numeric(12, 4), nullable=True),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "month", name="pk_monthly_revenue"),
        _account_key(),
    )
    op.create_index("ix_monthly_revenue_tenant_month", "monthly_revenue", ["tenant_id", "month"])
    op.create_table(
        "health_scores",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("account_id", ACCOUNT, nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("as_of_month", MONTH, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", name="pk_health_scores"),
        _account_key(),
    )
    op.create_table(
        "kb_documents",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("doc_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "doc_id", name="pk_kb_documents"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name="fk_kb_documents_tenant_id_tenants"
        ),
    )
    op.create_table(
        "refresh_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_jobs"),
    )
    # At most one running job per dataset, enforced by the database across every replica.
    op.create_index(
        "uq_refresh_jobs_running_dataset",
        "refresh_jobs",
        ["dataset"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_refresh_jobs_running_dataset", table_name="refresh_jobs")
    op.drop_table("refresh_jobs")
    op.drop_table("kb_documents")
    op.drop_table("health_scores")
    op.drop_index("ix_monthly_revenue_tenant_month", table_name="monthly_revenue")
    op.drop_table("monthly_revenue")
    op.drop_table("account_metrics")
    op.drop_table("accounts")
    op.drop_table("tenants")
