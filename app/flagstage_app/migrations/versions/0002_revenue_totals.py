"""Revenue totals per account over the common trailing windows, for index-only rankings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "revenue_totals",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("window_months", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("last_month", sa.String(7), nullable=False),
        sa.Column("total", sa.Numeric(20, 2), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "window_months", "account_id", name="pk_revenue_totals"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["accounts.tenant_id", "accounts.account_id"],
            name="fk_revenue_totals_tenant_id_account_id_accounts",
        ),
    )
    # In the ranking's own order, so the top N is the first N entries of the index.
    op.create_index(
        "ix_revenue_totals_ranking",
        "revenue_totals",
        ["tenant_id", "window_months", sa.text("total DESC"), "account_id"],
    )
    # Totals appear on the next load or customer_data refresh; until then rankings aggregate.


def downgrade() -> None:
    op.drop_index("ix_revenue_totals_ranking", table_name="revenue_totals")
    op.drop_table("revenue_totals")
