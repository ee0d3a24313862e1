"""The insights API's tables, as typed SQLAlchemy 2 mappings.

Every table but `refresh_jobs` is keyed by tenant first, so each query filters on the leading
column of its primary key. Months are `YYYY-MM` strings: they sort and compare correctly as
text on every backend. Money is `Numeric` (exact) and growth is a percentage, never an amount.
The schema itself is owned by the Alembic migrations; these classes must match them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TENANT_ID_LENGTH = 128
ACCOUNT_ID_LENGTH = 128
MONTH_LENGTH = 7
MONEY = Numeric(20, 2)
PERCENT = Numeric(12, 4)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Account(Base):
    """A customer account; `revenue` is its actual revenue in `revenue_month`."""

    __tablename__ = "accounts"

    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_ID_LENGTH), ForeignKey("tenants.tenant_id"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    industry: Mapped[str] = mapped_column(String(128))
    revenue: Mapped[Decimal] = mapped_column(MONEY)
    revenue_month: Mapped[str] = mapped_column(String(MONTH_LENGTH))


class AccountMetric(Base):
    """One month of an account's activity; `revenue_growth_pct` is against the month before."""

    __tablename__ = "account_metrics"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.account_id"]
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), primary_key=True)
    month: Mapped[str] = mapped_column(String(MONTH_LENGTH), primary_key=True)
    revenue_growth_pct: Mapped[Decimal] = mapped_column(PERCENT)
    active_users: Mapped[int] = mapped_column(Integer)
    support_tickets: Mapped[int] = mapped_column(Integer)
    nps: Mapped[Decimal] = mapped_column(Numeric(6, 2))


class MonthlyRevenue(Base):
    """Materialized revenue per account and month (see `flagstage_app.revenue`)."""

    __tablename__ = "monthly_revenue"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.account_id"]
        ),
        Index("ix_monthly_revenue_tenant_month", "tenant_id", "month"),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), primary_key=True)
    month: Mapped[str] = mapped_column(String(MONTH_LENGTH), primary_key=True)
    revenue: Mapped[Decimal] = mapped_column(MONEY)
    growth_pct: Mapped[Decimal | None] = mapped_column(PERCENT, nullable=True)
    estimated: Mapped[bool] = mapped_column(Boolean)


class RevenueTotal(Base):
    """An account's revenue summed over the `window_months` months ending at `last_month`.

    Written with `monthly_revenue` for the windows people ask about most, so a ranking reads
    the first entries of one index instead of aggregating every account's months.
    """

    __tablename__ = "revenue_totals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.account_id"]
        ),
        Index(
            "ix_revenue_totals_ranking",
            "tenant_id",
            "window_months",
            text("total DESC"),
            "account_id",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    window_months: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), primary_key=True)
    last_month: Mapped[str] = mapped_column(String(MONTH_LENGTH))
    total: Mapped[Decimal] = mapped_column(MONEY)


class HealthScore(Base):
    """An account's 0-100 health score as of `as_of_month` (see `flagstage_app.health`)."""

    __tablename__ = "health_scores"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.account_id"]
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    as_of_month: Mapped[str] = mapped_column(String(MONTH_LENGTH))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KnowledgeDocument(Base):
    """A text the tenant's knowledge base is built from."""

    __tablename__ = "kb_documents"

    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_ID_LENGTH), ForeignKey("tenants.tenant_id"), primary_key=True
    )
    doc_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RefreshJob(Base):
    """One background rebuild of a dataset; at most one per dataset is `running`."""

    __tablename__ = "refresh_jobs"
    __table_args__ = (
        Index(
            "uq_refresh_jobs_running_dataset",
            "dataset",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)


class UploadReceipt(Base):
    """A file uploaded with enhanced_upload on, by content hash: the same file loads once."""

    __tablename__ = "upload_receipts"

    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_ID_LENGTH), ForeignKey("tenants.tenant_id"), primary_key=True
    )
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(32))
    file_format: Mapped[str] = mapped_column(String(16))
    rows_loaded: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnswerRecord(Base):
    """An answer the query endpoint gave, kept so feedback can name it by `answer_id`."""

    __tablename__ = "answers"

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    query: Mapped[str] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnswerCitation(Base):
    """A knowledge-base document an answer cited."""

    __tablename__ = "answer_citations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "answer_id"], ["answers.tenant_id", "answers.answer_id"]
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class AnswerFeedback(Base):
    """A tenant's rating of one answer: +1 helpful, -1 not; one per answer, the latest wins."""

    __tablename__ = "answer_feedback"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "answer_id"], ["answers.tenant_id", "answers.answer_id"]
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH), primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
