"""Account health scores: a 0-100 figure per account from its last three months.

The score is the sum of four parts, each clamped to its range and linear in between, over the
months of the window that have a metrics record (the window is the three months ending at the
tenant's latest metrics month; an account with no record in it gets no score):

| part | points | 0 points at | full points at |
|---|---|---|---|
| revenue growth: mean monthly growth % | 30 | -10% or worse | +10% or better |
| active users trend: last vs first month of the window | 25 | -20% or worse | +20% or better |
| support load: tickets per 100 active users, latest month | 20 | 10 or more | 0 |
| NPS: mean over the window | 25 | -100 | +100 |

An account with a single month in the window has a flat users trend (half the points). The
total is rounded half-up to a whole number. Scores are rewritten for every tenant in the
caller's transaction, so readers see the old scores until the whole refresh commits.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from flagstage_app.models import AccountMetric, HealthScore, Tenant
from flagstage_app.months import shift_month

logger = logging.getLogger(__name__)

WINDOW_MONTHS = 3


@dataclass(frozen=True)
class MonthMetrics:
    month: str
    growth_pct: Decimal
    active_users: int
    support_tickets: int
    nps: Decimal


def _scaled(value: Decimal, worst: Decimal, best: Decimal, points: int) -> Decimal:
    """`points` times where `value` lies between `worst` (0) and `best` (all), clamped."""
    share = (value - worst) / (best - worst)
    return max(Decimal(0), min(Decimal(1), share)) * points


def health_score(months: Sequence[MonthMetrics]) -> int | None:
    """The score of an account from its records in the window, oldest first (None if none)."""
    if not months:
        return None
    count = Decimal(len(months))
    growth = sum((item.growth_pct for item in months), Decimal(0)) / count
    nps = sum((item.nps for item in months), Decimal(0)) / count

    first_users, last_users = months[0].active_users, months[-1].active_users
    trend = Decimal(last_users - first_users) / max(first_users, 1)
    latest = months[-1]
    tickets_per_100 = Decimal(latest.support_tickets * 100) / max(latest.active_users, 1)

    total = (
        _scaled(growth, Decimal(-10), Decimal(10), 30)
        + _scaled(trend, Decimal("-0.2"), Decimal("0.2"), 25)
        + _scaled(tickets_per_100, Decimal(10), Decimal(0), 20)
        + _scaled(nps, Decimal(-100), Decimal(100), 25)
    )
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rebuild_health_scores(session: Session) -> int:
    """Rewrite every tenant's health scores in the session's transaction; scores written."""
    now = datetime.now(UTC)
    tenants = session.scalars(select(Tenant.tenant_id).order_by(Tenant.tenant_id)).all()
    return sum(rescore_tenant(session, tenant, now=now) for tenant in tenants)


def rescore_tenant(
    session: Session,
    tenant: str,
    *,
    now: datetime,
    accounts: Collection[str] | None = None,
) -> int:
    """Rewrite `tenant`'s scores (only those of `accounts` when given); scores written.

    Scoring a subset is only right while the window stays where the other scores have it;
    `flagstage_app.recomputing` checks that before it asks for a subset.
    """
    chosen = None if accounts is None else sorted(set(accounts))
    removal = delete(HealthScore).where(HealthScore.tenant_id == tenant)
    if chosen is not None:
        removal = removal.where(HealthScore.account_id.in_(chosen))
    session.execute(removal)
    latest = latest_metrics_month(session, tenant)
    if latest is None:
        return 0

    first = shift_month(latest, 1 - WINDOW_MONTHS)
    query = (
        select(AccountMetric)
        .where(
            AccountMetric.tenant_id == tenant,
            AccountMetric.month >= first,
            AccountMetric.month <= latest,
        )
        .order_by(AccountMetric.account_id, AccountMetric.month)
    )
    if chosen is not None:
        query = query.where(AccountMetric.account_id.in_(chosen))
    by_account: dict[str, list[MonthMetrics]] = {}
    for item in session.execute(query).scalars():
        by_account.setdefault(item.account_id, []).append(
            MonthMetrics(
                item.month,
                Decimal(item.revenue_growth_pct),
                item.active_users,
                item.support_tickets,
                Decimal(item.nps),
            )
        )
    rows = [
        {
            "tenant_id": tenant,
            "account_id": account_id,
            "score": health_score(months),
            "as_of_month": latest,
            "computed_at": now,
        }
        for account_id, months in by_account.items()
    ]
    if rows:
        session.execute(insert(HealthScore), rows)
    logger.info(
        "health scores of tenant %s rebuilt as of %s (%s)",
        tenant,
        latest,
        "all accounts" if chosen is None else f"{len(chosen)} accounts",
    )
    return len(rows)


def latest_metrics_month(session: Session, tenant: str) -> str | None:
    """The tenant's latest month with a metrics record: the end of every score's window."""
    latest: str | None = session.execute(
        select(func.max(AccountMetric.month)).where(AccountMetric.tenant_id == tenant)
    ).scalar_one_or_none()
    return latest
