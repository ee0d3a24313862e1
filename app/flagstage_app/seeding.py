"""The demo dataset: a few tenants, hundreds of accounts each, two years of monthly metrics.

Generation is pure and deterministic: each tenant's figures come from a random generator seeded
with the tenant's name, so two machines (or two runs) produce byte-identical rows. The rows are
the same text a CSV upload would carry and go through `flagstage_app.ingesting`'s checks like
any upload. The growth series looks like real accounts: a steady trend per account, monthly
noise with negative months, the odd shock, a few months missing, and a few accounts that
stopped reporting before the last month (their revenue is carried forward and marked
estimated). Months are fixed, not relative to today, so the figures never drift.

Writing, skipping an already seeded database and the progress display are left to the callers
(`flagstage-app seed` and `flagstage-app demo`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from flagstage_app.models import (
    Account,
    AccountMetric,
    HealthScore,
    MonthlyRevenue,
    RevenueTotal,
)
from flagstage_app.months import month_range, shift_month

# Accounts per tenant in the default demo.
DEMO_TENANTS: dict[str, int] = {"acme": 400, "globex": 300, "initech": 250}
DEMO_LAST_MONTH = "2026-11"
DEMO_MONTHS = 24

# Shares of the generated data that exercise the estimated-revenue rules.
MISSING_MONTH_SHARE = 0.015
STOPPED_REPORTING_SHARE = 0.02
# Share of accounts whose recorded revenue is for an earlier month than the last one.
EARLY_BASE_SHARE = 0.2

_NAME_STEMS = (
    "Apex", "Birch", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Meridian", "Nimbus", "Onyx", "Pioneer", "Quarry", "Redwood", "Summit",
    "Tidal", "Umber", "Vertex", "Willow", "Yarrow", "Zenith",
)  # fmt: skip
_NAME_TAILS = (
    "Analytics", "Bakery", "Clinics", "Dynamics", "Freight", "Foods", "Health", "Labs",
    "Logistics", "Media", "Motors", "Partners", "Robotics", "Software", "Studios", "Systems",
    "Textiles", "Travel", "Utilities", "Ventures",
)  # fmt: skip
_INDUSTRIES = (
    "software", "retail", "logistics", "healthcare", "manufacturing", "media", "finance",
    "hospitality", "energy", "education",
)  # fmt: skip


@dataclass(frozen=True)
class TenantDataset:
    """One tenant's demo rows, as the text columns of the accounts and metrics uploads."""

    tenant: str
    accounts: list[dict[str, str]]
    metrics: list[dict[str, str]]


def demo_plan(accounts_per_tenant: int | None = None) -> dict[str, int]:
    """Tenants and their account counts: the defaults, or `accounts_per_tenant` for each."""
    if accounts_per_tenant is None:
        return dict(DEMO_TENANTS)
    return dict.fromkeys(DEMO_TENANTS, accounts_per_tenant)


def generate_tenant(
    tenant: str,
    accounts: int,
    *,
    last_month: str = DEMO_LAST_MONTH,
    months: int = DEMO_MONTHS,
) -> TenantDataset:
    """`accounts` accounts of `tenant` with `months` months of metrics ending at `last_month`."""
    rng = random.Random(f"flagstage-demo:{tenant}")
    calendar = month_range(shift_month(last_month, 1 - months), last_month)
    # Tenants differ in size: their typical account earns a different amount.
    scale = rng.uniform(6.5, 9.0)

    account_rows: list[dict[str, str]] = []
    metric_rows: list[dict[str, str]] = []
    for number in range(1, accounts + 1):
        account_id = f"{tenant}-{number:05d}"
        trend = rng.gauss(1.2, 1.5)
        volatility = rng.uniform(1.5, 6.0)
        base_month = (
            rng.choice(calendar[months // 2 : -1])
            if rng.random() < EARLY_BASE_SHARE
            else last_month
        )
        account_rows.append(
            {
                "account_id": account_id,
                "name": f"{rng.choice(_NAME_STEMS)} {rng.choice(_NAME_TAILS)} {number:03d}",
                "industry": rng.choice(_INDUSTRIES),
                "revenue": f"{math.exp(rng.gauss(scale, 0.9)) + 100:.2f}",
                "revenue_month": base_month,
            }
        )

        reported = calendar
        if rng.random() < STOPPED_REPORTING_SHARE:
            reported = calendar[: -rng.randint(1, 3)]
        users = max(3, int(math.exp(rng.gauss(3.5, 1.0))))
        for month in reported:
            growth = rng.gauss(trend, volatility)
            if rng.random() < 0.02:
                growth += rng.choice((-1, 1)) * rng.uniform(15, 35)
            growth = max(growth, -60.0)
            users = max(1, round(users * (1 + growth / 200) + rng.gauss(0, 1)))
            if rng.random() < MISSING_MONTH_SHARE:
                continue
            metric_rows.append(
                {
                    "account_id": account_id,
                    "month": month,
                    "revenue_growth_pct": f"{growth:.2f}",
                    "active_users": str(users),
                    "support_tickets": str(max(0, round(rng.gauss(users / 25, 2)))),
                    "nps": f"{max(-100.0, min(100.0, rng.gauss(25 + growth * 3, 18))):.1f}",
                }
            )
    return TenantDataset(tenant, account_rows, metric_rows)


def seeded_tenants(session: Session, tenants: Sequence[str]) -> list[str]:
    """Those of `tenants` that already have accounts."""
    rows = session.execute(
        select(Account.tenant_id)
        .where(Account.tenant_id.in_(tenants))
        .group_by(Account.tenant_id)
        .having(func.count() > 0)
    )
    return sorted(tenant for (tenant,) in rows)


def clear_tenant(session: Session, tenant: str) -> None:
    """Delete `tenant`'s accounts and everything derived from them, in the session's transaction.

    The tenant itself and its knowledge-base documents stay.
    """
    for model in (RevenueTotal, MonthlyRevenue, HealthScore, AccountMetric, Account):
        session.execute(delete(model).where(model.tenant_id == tenant))
