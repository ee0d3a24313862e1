"""Bringing derived data up to date for the accounts an upload touched, and only those.

Monthly revenue (with its windowed totals) and health scores are derived from accounts and
metrics. A full rebuild (`materialize_monthly_revenue`, `rebuild_health_scores`) rewrites a
whole tenant or every tenant; after an upload only the accounts it named have changed, so only
their rows are rewritten here. That is exact as long as the tenant's horizon stays put:
revenue series all end at the tenant's latest month, and health windows all end at its latest
metrics month. When an upload moves either, every account's rows move with it, and the tenant
is rebuilt whole.
Everything runs in the caller's transaction, so readers see the old rows or all the new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from flagstage_app.health import latest_metrics_month, rescore_tenant
from flagstage_app.models import (
    Account,
    AccountMetric,
    HealthScore,
    MonthlyRevenue,
    RevenueTotal,
)
from flagstage_app.revenue import (
    account_rows,
    latest_month,
    materialize_monthly_revenue,
    revenue_series,
)

logger = logging.getLogger(__name__)

ACCOUNTS_SCOPE = "accounts"
TENANT_SCOPE = "tenant"


@dataclass(frozen=True)
class DerivedUpdate:
    """What one refresh rewrote: `scope` is `accounts` (only those given) or `tenant` (all)."""

    revenue_scope: str
    revenue_rows: int
    health_scope: str
    health_scores: int

    def to_json(self) -> dict[str, object]:
        return {
            "monthly_revenue": {"scope": self.revenue_scope, "rows": self.revenue_rows},
            "health_scores": {"scope": self.health_scope, "scores": self.health_scores},
        }


def refresh_accounts(session: Session, tenant: str, accounts: Collection[str]) -> DerivedUpdate:
    """Rewrite the monthly revenue and health scores of `accounts` of `tenant`."""
    revenue_scope, revenue_rows = refresh_account_revenue(session, tenant, accounts)
    health_scope, scores = refresh_account_health(session, tenant, accounts)
    return DerivedUpdate(revenue_scope, revenue_rows, health_scope, scores)


def refresh_account_revenue(
    session: Session, tenant: str, accounts: Collection[str]
) -> tuple[str, int]:
    """Rewrite the revenue series of `accounts`; returns the scope and the rows written."""
    last = latest_month(session, tenant)
    stored_last = session.execute(
        select(func.max(MonthlyRevenue.month)).where(MonthlyRevenue.tenant_id == tenant)
    ).scalar_one_or_none()
    if last is None or stored_last != last:
        return TENANT_SCOPE, materialize_monthly_revenue(session, [tenant])

    chosen = sorted(set(accounts))
    for model in (MonthlyRevenue, RevenueTotal):
        session.execute(
            delete(model).where(model.tenant_id == tenant, model.account_id.in_(chosen))
        )
    growth: dict[str, dict[str, Decimal]] = {}
    for account_id, month, pct in session.execute(
        select(
            AccountMetric.account_id, AccountMetric.month, AccountMetric.revenue_growth_pct
        ).where(AccountMetric.tenant_id == tenant, AccountMetric.account_id.in_(chosen))
    ):
        growth.setdefault(account_id, {})[month] = Decimal(pct)

    rows: list[dict[str, object]] = []
    totals: list[dict[str, object]] = []
    for account_id, revenue, revenue_month in session.execute(
        select(Account.account_id, Account.revenue, Account.revenue_month).where(
            Account.tenant_id == tenant, Account.account_id.in_(chosen)
        )
    ):
        series = revenue_series(
            base_revenue=Decimal(revenue),
            base_month=revenue_month,
            growth=growth.get(account_id, {}),
            last_month=last,
        )
        months, windows = account_rows(tenant, account_id, series, last)
        rows.extend(months)
        totals.extend(windows)
    if rows:
        session.execute(insert(MonthlyRevenue), rows)
    if totals:
        session.execute(insert(RevenueTotal), totals)
    logger.info(
        "monthly revenue of %d accounts of tenant %s rewritten up to %s", len(chosen), tenant, last
    )
    return ACCOUNTS_SCOPE, len(rows)


def refresh_account_health(
    session: Session, tenant: str, accounts: Collection[str]
) -> tuple[str, int]:
    """Rescore `accounts`; the whole tenant when its scores' window has moved."""
    now = datetime.now(UTC)
    latest = latest_metrics_month(session, tenant)
    windows = set(
        session.scalars(
            select(HealthScore.as_of_month).where(HealthScore.tenant_id == tenant).distinct()
        )
    )
    if latest is None or windows != {latest}:
        return TENANT_SCOPE, rescore_tenant(session, tenant, now=now)
    return ACCOUNTS_SCOPE, rescore_tenant(session, tenant, now=now, accounts=accounts)
