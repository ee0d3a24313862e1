"""Monthly revenue of an account: its actual revenue carried through monthly growth rates.

An account records its actual revenue for one month (the base month); its metrics record, per
month, the growth of revenue against the month before, in percent. Amounts are never summed
from percentages. The rules, for an account with base revenue R in month B:

- revenue(B) = R;
- after B: revenue(m) = revenue(m-1) * (1 + growth(m) / 100);
- before B, the same relation read backwards: revenue(m) = revenue(m+1) / (1 + growth(m+1) / 100);
  a growth of -100% cannot be undone, so months before it are left out;
- a month without a growth record carries its neighbour's revenue (growth 0) and is marked
  `estimated`: forwards it carries the month before, backwards the month after;
- the series runs from the earlier of B and the first metric month to the tenant's latest
  month with data, so an account that stopped reporting still shows (estimated) revenue.

Arithmetic is exact `Decimal` at 28 significant digits from month to month; each month's
amount is rounded half-up to cents only when it is stored, so a long chain does not drift by
rounding at every step. `materialize_monthly_revenue` writes the series to `monthly_revenue`
in the caller's transaction, so readers see either the old series or the new one. With it, it
writes each account's total over the trailing windows in `RANKED_WINDOWS` to `revenue_totals`
(sums of the stored cent amounts, so a ranking from them equals one aggregated from the months).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from sqlalchemy import delete, func, insert, select, union_all
from sqlalchemy.orm import Session

from flagstage_app.models import Account, AccountMetric, MonthlyRevenue, RevenueTotal
from flagstage_app.months import format_month, parse_month

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
PRECISION_DIGITS = 28
INSERT_BATCH_ROWS = 5000
# Trailing windows whose totals are stored: last month, quarter, four months, half and year.
RANKED_WINDOWS = (1, 3, 4, 6, 12)


@dataclass(frozen=True)
class MonthRevenue:
    month: str
    revenue: Decimal
    growth_pct: Decimal | None
    estimated: bool


def to_cents(amount: Decimal) -> Decimal:
    """`amount` rounded half-up to cents, the way money is stored and shown."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def revenue_series(
    *,
    base_revenue: Decimal,
    base_month: str,
    growth: Mapping[str, Decimal],
    last_month: str,
) -> list[MonthRevenue]:
    """One account's revenue for every month it has, oldest first (see the module rules)."""
    base = parse_month(base_month)
    growth_by_index = {parse_month(month): pct for month, pct in growth.items()}
    first = min([base, *growth_by_index])
    last = max(base, parse_month(last_month))

    exact: dict[int, Decimal] = {base: base_revenue}
    with localcontext() as context:
        context.prec = PRECISION_DIGITS

        value = base_revenue
        for index in range(base + 1, last + 1):
            pct = growth_by_index.get(index)
            if pct is not None:
                value = value * (1 + pct / HUNDRED)
            exact[index] = value

        value = base_revenue
        for index in range(base - 1, first - 1, -1):
            pct = growth_by_index.get(index + 1)
            if pct is not None:
                factor = 1 + pct / HUNDRED
                if factor == 0:
                    # Revenue went to zero in index + 1: nothing tells what it was before.
                    break
                value = value / factor
            exact[index] = value

    return [
        MonthRevenue(
            month=format_month(index),
            revenue=to_cents(exact[index]),
            growth_pct=growth_by_index.get(index),
            estimated=index not in growth_by_index and index != base,
        )
        for index in sorted(exact)
    ]


def latest_month(session: Session, tenant: str) -> str | None:
    """The tenant's latest month with any data: a metric month or a base revenue month."""
    months = union_all(
        select(func.max(AccountMetric.month).label("month")).where(
            AccountMetric.tenant_id == tenant
        ),
        select(func.max(Account.revenue_month).label("month")).where(Account.tenant_id == tenant),
    ).subquery()
    result: str | None = session.execute(select(func.max(months.c.month))).scalar_one_or_none()
    return result


def _growth_by_account(session: Session, tenant: str) -> dict[str, dict[str, Decimal]]:
    rows = session.execute(
        select(AccountMetric.account_id, AccountMetric.month, AccountMetric.revenue_growth_pct)
        .where(AccountMetric.tenant_id == tenant)
        .execution_options(yield_per=INSERT_BATCH_ROWS)
    )
    growth: dict[str, dict[str, Decimal]] = {}
    for account_id, month, pct in rows:
        growth.setdefault(account_id, {})[month] = Decimal(pct)
    return growth


Row = dict[str, object]


def account_rows(
    tenant: str, account_id: str, series: Sequence[MonthRevenue], last: str
) -> tuple[list[Row], list[Row]]:
    """One account's `monthly_revenue` rows and its `revenue_totals` rows, one per ranked
    window ending at `last` (sums of the stored cent amounts, as the ranking reads them)."""
    months: list[Row] = [
        {
            "tenant_id": tenant,
            "account_id": account_id,
            "month": item.month,
            "revenue": item.revenue,
            "growth_pct": item.growth_pct,
            "estimated": item.estimated,
        }
        for item in series
    ]
    last_index = parse_month(last)
    totals: list[Row] = []
    for window in RANKED_WINDOWS:
        inside = [item.revenue for item in series if last_index - parse_month(item.month) < window]
        if inside:
            totals.append(
                {
                    "tenant_id": tenant,
                    "window_months": window,
                    "account_id": account_id,
                    "last_month": last,
                    "total": sum(inside, Decimal(0)),
                }
            )
    return months, totals


def _series_rows(
    session: Session, tenant: str, last: str
) -> Iterator[tuple[list[dict[str, object]], list[dict[str, object]]]]:
    """Per account: its `monthly_revenue` rows and its `revenue_totals` rows."""
    growth = _growth_by_account(session, tenant)
    accounts = session.execute(
        select(Account.account_id, Account.revenue, Account.revenue_month).where(
            Account.tenant_id == tenant
        )
    )
    for account_id, revenue, revenue_month in accounts.all():
        series = revenue_series(
            base_revenue=Decimal(revenue),
            base_month=revenue_month,
            growth=growth.get(account_id, {}),
            last_month=last,
        )
        yield account_rows(tenant, account_id, series, last)


def materialize_monthly_revenue(session: Session, tenants: Sequence[str]) -> int:
    """Rewrite `monthly_revenue` and `revenue_totals` of `tenants` inside the session's
    transaction; returns the `monthly_revenue` rows written."""
    written = 0
    for tenant in tenants:
        session.execute(delete(MonthlyRevenue).where(MonthlyRevenue.tenant_id == tenant))
        session.execute(delete(RevenueTotal).where(RevenueTotal.tenant_id == tenant))
        last = latest_month(session, tenant)
        if last is None:
            continue
        months: list[dict[str, object]] = []
        totals: list[dict[str, object]] = []
        for account_months, account_totals in _series_rows(session, tenant, last):
            months.extend(account_months)
            totals.extend(account_totals)
            if len(months) >= INSERT_BATCH_ROWS:
                session.execute(insert(MonthlyRevenue), months)
                written += len(months)
                months = []
            if len(totals) >= INSERT_BATCH_ROWS:
                session.execute(insert(RevenueTotal), totals)
                totals = []
        if months:
            session.execute(insert(MonthlyRevenue), months)
            written += len(months)
        if totals:
            session.execute(insert(RevenueTotal), totals)
        logger.info("monthly revenue of tenant %s rebuilt up to %s", tenant, last)
    return written
