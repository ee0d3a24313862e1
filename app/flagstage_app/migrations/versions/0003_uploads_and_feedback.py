"""Upload receipts (idempotent re-uploads), answers, their citations and their feedback.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "upload_receipts",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "content_hash", name="pk_upload_receipts"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name="fk_upload_receipts_tenant_id_tenants",
        ),
    )
    op.create_table(
        "answers",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("answer_id", sa.String(32), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "answer_id", name="pk_answers"),
    )
    op.create_table(
        "answer_citations",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("answer_id", sa.String(32), nullable=False),
        sa.Column("doc_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "answer_id", "doc_id", name="pk_answer_citations"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "answer_id"],
            ["answers.tenant_id", "answers.answer_id"],
            name="fk_answer_citations_tenant_id_answer_id_answers",
        ),
    )
    op.create_table(
        "answer_feedback",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("answer_id", sa.String(32), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "answer_id", name="pk_answer_feedback"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "answer_id"],
            ["answers.tenant_id", "answers.answer_id"],
            name="fk_answer_feedback_tenant_id_answer_id_answers",
        ),
    )


def downgrade() -> None:
    op.drop_table("answer_feedback")
    op.drop_table("answer_citations")
    op.drop_table("answers")
    op.drop_table("upload_receipts")
