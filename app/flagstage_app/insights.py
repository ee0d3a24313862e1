"""Answers to revenue-over-time questions, from the materialized monthly revenue.

The ranking reads the first entries of the `revenue_totals` index when the window is one of
the stored ones (`RANKED_WINDOWS`) and its totals are as recent as the monthly revenue; any
other window, or totals not built yet, is one SQL aggregation over `monthly_revenue` (sum per
account over the window, ordered, limited). Then one query fetches the months of the accounts
kept; no revenue is computed here. The window is N calendar months ending at the tenant's
latest month with revenue, where N comes from the request, else from the question ("last 6
months"), else 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flagstage_app.models import Account, MonthlyRevenue, RevenueTotal
from flagstage_app.months import shift_month
from flagstage_app.revenue import RANKED_WINDOWS, to_cents

DEFAULT_WINDOW_MONTHS = 4
DEFAULT_LIMIT = 10
MAX_WINDOW_MONTHS = 120

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18, "twenty-four": 24,
}  # fmt: skip
_MONTHS_ASKED = re.compile(
    r"\b(?:last|past|previous|recent|trailing)\s+(\d{1,3}|[a-z-]+)\s+months?\b", re.IGNORECASE
)
_PERIODS_ASKED = {
    re.compile(r"\b(?:last|past|previous)\s+month\b", re.IGNORECASE): 1,
    re.compile(r"\b(?:last|past|previous)\s+quarter\b", re.IGNORECASE): 3,
    re.compile(r"\b(?:last|past|previous)\s+(?:year|twelve months)\b", re.IGNORECASE): 12,
}


def months_in_question(question: str) -> int | None:
    """The window a question asks for ("last 4 months", "past six months", "last quarter")."""
    match = _MONTHS_ASKED.search(question)
    if match:
        word = match.group(1).lower()
        count = int(word) if word.isdigit() else _NUMBER_WORDS.get(word)
        if count:
            return min(count, MAX_WINDOW_MONTHS)
    for pattern, count in _PERIODS_ASKED.items():
        if pattern.search(question):
            return count
    return None


@dataclass(frozen=True)
class MonthAmount:
    month: str
    revenue: Decimal
    growth_pct: Decimal | None
    estimated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "revenue": f"{to_cents(self.revenue)}",
            "growth_pct": None if self.growth_pct is None else f"{self.growth_pct.normalize():f}",
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class RankedAccount:
    account_id: str
    name: str
    total_revenue: Decimal
    months: list[MonthAmount] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "name": self.name,
            "total_revenue": f"{to_cents(self.total_revenue)}",
            "months": [item.to_json() for item in self.months],
        }


@dataclass(frozen=True)
class RevenueRanking:
    window: list[str]
    accounts: list[RankedAccount]

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "accounts": [item.to_json() for item in self.accounts]}


def rank_accounts_by_revenue(
    session: Session,
    tenant: str,
    *,
    months: int = DEFAULT_WINDOW_MONTHS,
    limit: int = DEFAULT_LIMIT,
) -> RevenueRanking:
    """The tenant's `limit` accounts with the most revenue over the last `months` months."""
    latest = session.execute(
        select(func.max(MonthlyRevenue.month)).where(MonthlyRevenue.tenant_id == tenant)
    ).scalar_one_or_none()
    if latest is None:
        return RevenueRanking(window=[], accounts=[])
    window = [shift_month(latest, offset) for offset in range(1 - months, 1)]

    ranking: list[tuple[str, Decimal]] = []
    if months in RANKED_WINDOWS:
        ranking = ranked_from_totals(session, tenant, months, latest, limit)
    if not ranking:
        ranking = ranked_by_aggregation(session, tenant, window, limit)
    if not ranking:
        return RevenueRanking(window=window, accounts=[])

    ids = [account_id for account_id, _ in ranking]
    names: dict[str, str] = {
        account_id: name
        for account_id, name in session.execute(
            select(Account.account_id, Account.name).where(
                Account.tenant_id == tenant, Account.account_id.in_(ids)
            )
        )
    }
    by_account: dict[str, list[MonthAmount]] = {account_id: [] for account_id in ids}
    rows = session.execute(
        select(MonthlyRevenue)
        .where(
            MonthlyRevenue.tenant_id == tenant,
            MonthlyRevenue.account_id.in_(ids),
            MonthlyRevenue.month >= window[0],
            MonthlyRevenue.month <= window[-1],
        )
        .order_by(MonthlyRevenue.account_id, MonthlyRevenue.month)
    ).scalars()
    for item in rows:
        by_account[item.account_id].append(
            MonthAmount(item.month, Decimal(item.revenue), item.growth_pct, item.estimated)
        )

    accounts = [
        RankedAccount(account_id, names.get(account_id, ""), total, by_account[account_id])
        for account_id, total in ranking
    ]
    return RevenueRanking(window=window, accounts=accounts)


def ranked_from_totals(
    session: Session, tenant: str, months: int, latest: str, limit: int
) -> list[tuple[str, Decimal]]:
    """The top `limit` (account, total) from the stored totals; empty when none are stored."""
    rows = session.execute(
        select(RevenueTotal.account_id, RevenueTotal.total)
        .where(
            RevenueTotal.tenant_id == tenant,
            RevenueTotal.window_months == months,
            RevenueTotal.last_month == latest,
        )
        .order_by(RevenueTotal.total.desc(), RevenueTotal.account_id)
        .limit(limit)
    )
    return [(account_id, Decimal(total)) for account_id, total in rows]


def ranked_by_aggregation(
    session: Session, tenant: str, window: list[str], limit: int
) -> list[tuple[str, Decimal]]:
    """The top `limit` (account, total) summed from the months of `window` by the database."""
    total = func.sum(MonthlyRevenue.revenue).label("total")
    rows = session.execute(
        select(MonthlyRevenue.account_id, total)
        .where(
            MonthlyRevenue.tenant_id == tenant,
            MonthlyRevenue.month >= window[0],
            MonthlyRevenue.month <= window[-1],
        )
        .group_by(MonthlyRevenue.account_id)
        .order_by(total.desc(), MonthlyRevenue.account_id)
        .limit(limit)
    )
    return [(account_id, Decimal(amount)) for account_id, amount in rows]


def describe_ranking(ranking: RevenueRanking) -> str:
    """A one-paragraph answer naming the window and the leading accounts."""
    if not ranking.window:
        return (
            "There is no revenue data for this customer yet; load accounts and monthly "
            "metrics first."
        )
    span = f"{ranking.window[0]} to {ranking.window[-1]}"
    if not ranking.accounts:
        return f"No account has revenue in the {len(ranking.window)} months {span}."
    leaders = "; ".join(
        f"{index}. {item.name} ({item.account_id}): {to_cents(item.total_revenue):,}"
        for index, item in enumerate(ranking.accounts, start=1)
    )
    estimated = sum(1 for item in ranking.accounts if any(m.estimated for m in item.months))
    note = (
        f" {estimated} of these accounts have months without a growth record; their revenue "
        "for those months is carried from the month before and marked estimated."
        if estimated
        else ""
    )
    return (
        f"Top {len(ranking.accounts)} accounts by total revenue over the "
        f"{len(ranking.window)} months {span}: {leaders}.{note}"
    )
