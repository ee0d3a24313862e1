"""Rankings read from the stored window totals agree with rankings aggregated from the months."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flagstage_app.chunked_loading import load_in_chunks
from flagstage_app.db import make_session_factory, transaction
from flagstage_app.ingesting import ACCOUNTS, METRICS
from flagstage_app.insights import rank_accounts_by_revenue, ranked_by_aggregation
from flagstage_app.models import RevenueTotal
from flagstage_app.months import shift_month
from flagstage_app.revenue import RANKED_WINDOWS, materialize_monthly_revenue
from flagstage_app.seeding import DEMO_LAST_MONTH, generate_tenant
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    dataset = generate_tenant("acme", 60)
    with transaction(make_session_factory(engine)) as session:
        load_in_chunks(session, "acme", ACCOUNTS, dataset.accounts)
        load_in_chunks(session, "acme", METRICS, dataset.metrics)
        materialize_monthly_revenue(session, ["acme"])
    return engine


def aggregated(session: Session, months: int, limit: int) -> list[tuple[str, Decimal]]:
    window = [shift_month(DEMO_LAST_MONTH, offset) for offset in range(1 - months, 1)]
    return ranked_by_aggregation(session, "acme", window, limit)


@pytest.mark.parametrize("months", [*RANKED_WINDOWS, 5, 24])
def test_the_stored_totals_rank_exactly_like_the_months_add_up(seeded: Engine, months: int) -> None:
    with Session(seeded) as session:
        ranking = rank_accounts_by_revenue(session, "acme", months=months, limit=15)
        expected = aggregated(session, months, 15)

    assert [(item.account_id, item.total_revenue) for item in ranking.accounts] == expected
    for item in ranking.accounts:
        assert item.total_revenue == sum((m.revenue for m in item.months), Decimal(0))


def test_every_account_gets_a_total_per_stored_window(seeded: Engine) -> None:
    with Session(seeded) as session:
        counts = dict(
            session.execute(
                select(RevenueTotal.window_months, func.count()).group_by(
                    RevenueTotal.window_months
                )
            ).all()
        )

    assert counts == dict.fromkeys(RANKED_WINDOWS, 60)


def test_without_stored_totals_the_ranking_aggregates_the_months(seeded: Engine) -> None:
    with Session(seeded) as session:
        before = rank_accounts_by_revenue(session, "acme", months=4)
        session.execute(delete(RevenueTotal))
        after = rank_accounts_by_revenue(session, "acme", months=4)

    assert after == before
