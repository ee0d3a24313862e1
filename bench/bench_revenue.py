"""How long the revenue ranking takes: top 10 accounts over the last 4 months of one tenant.

Three implementations run in the same process on the same data, on PostgreSQL and on SQLite:
- the app's own `rank_accounts_by_revenue`, which reads the first entries of the stored window
  totals' index, then the months of the ten accounts it kept;
- the app's fallback for windows without stored totals: one GROUP BY over the window's months;
- a naive implementation: the window's rows fetched one by one and summed in Python.
All three must name the same accounts with the same totals.

The data (by default 100,000 accounts x 24 months) is generated with a fixed seed and written
in bulk (COPY on PostgreSQL, executemany on SQLite) into a schema built by the app's
migrations; generating it is not what is measured. Only `accounts`, `monthly_revenue` and
`revenue_totals` are filled: the ranking reads nothing else.

    python bench/bench_revenue.py [--accounts N] [--runs N] [--backends postgresql,sqlite]

PostgreSQL comes from --postgres-url, else FLAGSTAGE_BENCH_POSTGRES_URL, else the URL
`make postgres` writes to var/postgres-url; a scratch database is created there and dropped.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from flagstage_app.db import make_engine, normalize_url
from flagstage_app.insights import RevenueRanking, rank_accounts_by_revenue, ranked_by_aggregation
from flagstage_app.migrating import upgrade_database
from flagstage_app.models import Account, MonthlyRevenue
from flagstage_app.months import month_range, shift_month
from flagstage_app.revenue import RANKED_WINDOWS
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

TENANT = "bench"
LAST_MONTH = "2026-11"
WINDOW_MONTHS = 4
TOP = 10
TARGET_POSTGRES_MS = 100.0
TARGET_SPEEDUP = 20.0
SQLITE_BATCH_ROWS = 50_000
COPY_BATCH_ROWS = 100_000


def account_rows(count: int) -> Iterator[tuple[str, str, str, str, str]]:
    for number in range(count):
        yield (TENANT, f"acct-{number:06d}", f"Account {number:06d}", "software", LAST_MONTH)


def revenue_rows(
    count: int, months: int, totals: list[tuple[str, int, str, str, str]]
) -> Iterator[tuple[str, str, str, str, str, bool]]:
    """(tenant, account, month, revenue, growth, estimated) with compounding monthly growth.

    Appends each account's totals over the stored windows to `totals`, as the app would.
    """
    rng = random.Random(20261203)
    calendar = month_range(shift_month(LAST_MONTH, 1 - months), LAST_MONTH)
    for number in range(count):
        account_id = f"acct-{number:06d}"
        revenue = rng.lognormvariate(8.5, 1.0)
        trend = rng.gauss(1.0, 1.5)
        amounts: list[Decimal] = []
        for month in calendar:
            estimated = rng.random() < 0.015
            growth = 0.0 if estimated else rng.gauss(trend, 4.0)
            revenue *= 1 + growth / 100
            amount = f"{revenue:.2f}"
            amounts.append(Decimal(amount))
            yield (TENANT, account_id, month, amount, f"{growth:.2f}", estimated)
        for window in RANKED_WINDOWS:
            total = sum(amounts[-window:], Decimal(0))
            totals.append((TENANT, window, account_id, LAST_MONTH, f"{total}"))


# -- filling the databases ---------------------------------------------------------------------


def fill_postgres(engine: Engine, accounts: int, months: int) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("INSERT INTO tenants (tenant_id, created_at) VALUES (%s, now())", (TENANT,))
        _copy(
            cursor,
            "accounts (tenant_id, account_id, name, industry, revenue, revenue_month)",
            ((t, a, n, i, "1000.00", m) for t, a, n, i, m in account_rows(accounts)),
        )
        totals: list[tuple[str, int, str, str, str]] = []
        _copy(
            cursor,
            "monthly_revenue (tenant_id, account_id, month, revenue, growth_pct, estimated)",
            (
                (t, a, m, r, "\\N" if e else g, "t" if e else "f")
                for t, a, m, r, g, e in revenue_rows(accounts, months, totals)
            ),
        )
        _copy(
            cursor,
            "revenue_totals (tenant_id, window_months, account_id, last_month, total)",
            ((t, str(w), a, m, total) for t, w, a, m, total in totals),
        )
        raw.commit()
    finally:
        raw.close()
    # Fresh statistics and visibility map, as autovacuum would leave them soon after a refresh.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE accounts"))
        connection.execute(text("VACUUM ANALYZE monthly_revenue"))
        connection.execute(text("VACUUM ANALYZE revenue_totals"))


def _copy(cursor: Any, target: str, rows: Iterator[tuple[str, ...]]) -> None:
    with cursor.copy(f"COPY {target} FROM STDIN") as copy:
        buffer = io.StringIO()
        pending = 0
        for row in rows:
            buffer.write("\t".join(row))
            buffer.write("\n")
            pending += 1
            if pending >= COPY_BATCH_ROWS:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
                pending = 0
        copy.write(buffer.getvalue())


def fill_sqlite(engine: Engine, accounts: int, months: int) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(
            "INSERT INTO tenants (tenant_id, created_at) VALUES (?, '2026-12-01 00:00:00')",
            (TENANT,),
        )
        cursor.executemany(
            "INSERT INTO accounts (tenant_id, account_id, name, industry, revenue, revenue_month)"
            " VALUES (?, ?, ?, ?, 1000, ?)",
            account_rows(accounts),
        )
        batch: list[tuple[Any, ...]] = []
        insert = (
            "INSERT INTO monthly_revenue (tenant_id, account_id, month, revenue, growth_pct, "
            "estimated) VALUES (?, ?, ?, ?, ?, ?)"
        )
        totals: list[tuple[str, int, str, str, str]] = []
        for t, a, m, r, g, e in revenue_rows(accounts, months, totals):
            batch.append((t, a, m, r, None if e else g, e))
            if len(batch) >= SQLITE_BATCH_ROWS:
                cursor.executemany(insert, batch)
                batch.clear()
        cursor.executemany(insert, batch)
        cursor.executemany(
            "INSERT INTO revenue_totals (tenant_id, window_months, account_id, last_month, total)"
            " VALUES (?, ?, ?, ?, ?)",
            totals,
        )
        raw.commit()
        cursor.execute("ANALYZE")
    finally:
        raw.close()


# -- the two implementations -------------------------------------------------------------------


def ranked_by_sql(session: Session) -> list[tuple[str, Decimal]]:
    ranking: RevenueRanking = rank_accounts_by_revenue(
        session, TENANT, months=WINDOW_MONTHS, limit=TOP
    )
    return [(item.account_id, item.total_revenue) for item in ranking.accounts]


def ranked_by_group_by(session: Session) -> list[tuple[str, Decimal]]:
    """The app's fallback for windows without stored totals: one GROUP BY over the months."""
    window = [shift_month(LAST_MONTH, offset) for offset in range(1 - WINDOW_MONTHS, 1)]
    return ranked_by_aggregation(session, TENANT, window, TOP)


def ranked_row_by_row(session: Session) -> list[tuple[str, Decimal]]:
    """The straightforward version: fetch the window's rows and add them up in Python."""
    latest = session.execute(
        select(func.max(MonthlyRevenue.month)).where(MonthlyRevenue.tenant_id == TENANT)
    ).scalar_one()
    first = shift_month(latest, 1 - WINDOW_MONTHS)
    totals: dict[str, Decimal] = {}
    rows = session.execute(
        select(MonthlyRevenue.account_id, MonthlyRevenue.revenue).where(
            MonthlyRevenue.tenant_id == TENANT,
            MonthlyRevenue.month >= first,
            MonthlyRevenue.month <= latest,
        )
    )
    for account_id, revenue in rows:
        totals[account_id] = totals.get(account_id, Decimal(0)) + Decimal(revenue)
    names = dict(
        session.execute(
            select(Account.account_id, Account.name).where(Account.tenant_id == TENANT)
        ).all()
    )
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [(account_id, total) for account_id, total in ranked if account_id in names]


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    label: str
    runs: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.runs)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def measure(
    engine: Engine, label: str, call: Callable[[Session], list[tuple[str, Decimal]]], runs: int
) -> tuple[Timing, list[tuple[str, Decimal]]]:
    times = []
    result: list[tuple[str, Decimal]] = []
    with Session(engine) as session:
        call(session)  # warm the caches and the connection
        session.rollback()
        for _ in range(runs):
            began = time.perf_counter()
            result = call(session)
            times.append(time.perf_counter() - began)
            session.rollback()
    return Timing(label, times), result


def bench_backend(
    name: str, url: str, fill: Callable[[Engine, int, int], None], args: argparse.Namespace
) -> list[Timing]:
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        began = time.perf_counter()
        fill(engine, args.accounts, args.months)
        rows = args.accounts * args.months
        took = time.perf_counter() - began
        print(
            f"{name}: wrote {args.accounts:,} accounts x {args.months} months ({rows:,} rows) "
            f"in {took:.1f} s (not measured)"
        )

        fast, fast_result = measure(engine, f"{name} app ranking", ranked_by_sql, args.runs)
        grouped, grouped_result = measure(
            engine, f"{name} GROUP BY fallback", ranked_by_group_by, args.naive_runs
        )
        slow, slow_result = measure(
            engine, f"{name} naive row by row", ranked_row_by_row, args.naive_runs
        )
        if not fast_result == grouped_result == slow_result:
            raise SystemExit(f"{name}: the implementations disagree on the top {TOP}")
        return [fast, grouped, slow]
    finally:
        engine.dispose()


def postgres_server_url(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    from_env = os.environ.get("FLAGSTAGE_BENCH_POSTGRES_URL")
    if from_env:
        return from_env
    saved = Path(__file__).parents[1] / "var" / "postgres-url"
    if saved.is_file() and saved.read_text().strip():
        return saved.read_text().strip()
    return None


def bench_postgres(args: argparse.Namespace) -> list[Timing]:
    server = postgres_server_url(args.postgres_url)
    if server is None:
        print("postgresql: skipped, no server (run `make postgres` or pass --postgres-url)")
        return []
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    name = f"flagstage_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = normalize_url(server).set(database=name).render_as_string(hide_password=False)
        return bench_backend("postgresql", url, fill_postgres, args)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_sqlite(args: argparse.Namespace) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="flagstage-bench-") as scratch:
        return bench_backend("sqlite", f"sqlite:///{scratch}/bench.db", fill_sqlite, args)


def report(timings: list[Timing]) -> None:
    print(f"\n{'implementation':<34} {'median ms':>10} {'p95 ms':>10} {'runs':>5}")
    for timing in timings:
        figures = f"{timing.median_ms:>10.1f} {timing.p95_ms:>10.1f} {len(timing.runs):>5}"
        print(f"{timing.label:<34} {figures}")
    for fast, slow in zip(timings[::3], timings[2::3], strict=True):
        backend = fast.label.split()[0]
        speedup = slow.median_ms / fast.median_ms
        verdict = "ok" if speedup >= TARGET_SPEEDUP else "below target"
        target = f"target >= {TARGET_SPEEDUP:.0f}x: {verdict}"
        print(f"{backend}: SQL is {speedup:.0f}x the naive one ({target})")
        if backend == "postgresql":
            met = "ok" if fast.median_ms < TARGET_POSTGRES_MS else "above target"
            target = f"target < {TARGET_POSTGRES_MS:.0f} ms: {met}"
            print(f"postgresql: median {fast.median_ms:.1f} ms ({target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of the SQL ranking")
    parser.add_argument("--naive-runs", type=int, default=5, help="timed runs of the naive one")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--postgres-url", help="a PostgreSQL server to create a scratch database on"
    )
    args = parser.parse_args()

    timings: list[Timing] = []
    backends = {"postgresql": bench_postgres, "sqlite": bench_sqlite}
    for backend in args.backends.split(","):
        timings.extend(backends[backend.strip()](args))
    report(timings)


if __name__ == "__main__":
    main()
