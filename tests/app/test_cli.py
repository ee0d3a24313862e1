"""The `flagstage-app` command: a deterministic demo seed, all-or-nothing CSV loads, toggles
published into a watched directory, and the demo server that `make run` starts."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from flagstage_app.chunked_loading import load_in_chunks
from flagstage_app.cli import main
from flagstage_app.db import make_session_factory, transaction
from flagstage_app.ingesting import ACCOUNTS, METRICS, UploadError
from flagstage_app.models import Account, AccountMetric, MonthlyRevenue
from flagstage_app.seeding import DEMO_LAST_MONTH, generate_tenant
from flagstage_app.toggles.kubelet import DATA_LINK, current_version
from rich.console import Console
from sqlalchemy import Engine, func, select

from tests.app.conftest import ADMIN_TOKEN

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"
ACCOUNTS_HEADER = "account_id,name,industry,revenue,revenue_month"
METRICS_HEADER = "account_id,month,revenue_growth_pct,active_users,support_tickets,nps"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), console=Console(file=out, width=300, color_system=None))
    return code, out.getvalue()


def revenue_rows(engine: Engine) -> list[tuple[str, str, str, Decimal, bool]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                MonthlyRevenue.tenant_id,
                MonthlyRevenue.account_id,
                MonthlyRevenue.month,
                MonthlyRevenue.revenue,
                MonthlyRevenue.estimated,
            ).order_by(MonthlyRevenue.tenant_id, MonthlyRevenue.account_id, MonthlyRevenue.month)
        )
        return [(t, a, m, Decimal(r), bool(e)) for t, a, m, r, e in rows]


def count(engine: Engine, model: type[Account] | type[AccountMetric], tenant: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(model).where(model.tenant_id == tenant)
            ).scalar_one()
        )


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- seed --------------------------------------------------------------------------------------


def test_seeding_gives_the_same_figures_every_time(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    assert run("seed", "--database-url", database_url, "--accounts", "30")[0] == 0
    first = revenue_rows(engine)
    assert run("seed", "--database-url", database_url, "--accounts", "30", "--force")[0] == 0
    again = revenue_rows(engine)

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("seed", "--database-url", other_url, "--accounts", "30")[0] == 0
    from flagstage_app.db import make_engine

    other_engine = make_engine(other_url)
    elsewhere = revenue_rows(other_engine)
    other_engine.dispose()

    assert first == again == elsewhere
    assert {row[0] for row in first} == {"acme", "globex", "initech"}


def test_seeding_is_skipped_when_the_demo_tenants_have_data(
    engine: Engine, database_url: str
) -> None:
    run("seed", "--database-url", database_url, "--accounts", "5")

    code, output = run("seed", "--database-url", database_url, "--accounts", "9")

    assert code == 0
    assert "seeding skipped" in output
    assert count(engine, Account, "acme") == 5


def test_forced_seeding_replaces_the_demo_tenants_accounts(
    engine: Engine, database_url: str
) -> None:
    run("seed", "--database-url", database_url, "--accounts", "8")

    run("seed", "--database-url", database_url, "--accounts", "3", "--force")

    assert count(engine, Account, "acme") == 3
    assert count(engine, AccountMetric, "acme") <= 3 * 24


def test_the_demo_data_has_two_years_with_losses_and_gaps() -> None:
    dataset = generate_tenant("acme", 200)

    months = sorted({row["month"] for row in dataset.metrics})
    growth = [Decimal(row["revenue_growth_pct"]) for row in dataset.metrics]
    assert len(months) == 24 and months[-1] == DEMO_LAST_MONTH
    assert sum(1 for pct in growth if pct < 0) > len(growth) // 10
    assert len(dataset.metrics) < 200 * 24
    assert generate_tenant("acme", 200) == dataset
    assert generate_tenant("globex", 200) != dataset


# -- load --------------------------------------------------------------------------------------


def test_loading_csv_files_computes_revenue_by_compounding_growth(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    accounts = write(tmp_path / "accounts.csv", ACCOUNTS_HEADER, "A1,Alpha,retail,1000,2026-01")
    metrics = write(
        tmp_path / "metrics.csv",
        METRICS_HEADER,
        "A1,2026-02,10,5,0,40",
        "A1,2026-04,-50,5,0,40",
    )

    code, output = run(
        "load", "--database-url", database_url, "--tenant", "t1", str(accounts), str(metrics)
    )

    assert code == 0, output
    assert "1 accounts rows loaded (1 new, 0 replaced)" in output
    assert [(m, r, e) for _, _, m, r, e in revenue_rows(engine)] == [
        ("2026-01", Decimal("1000.00"), False),
        ("2026-02", Decimal("1100.00"), False),
        ("2026-03", Decimal("1100.00"), True),
        ("2026-04", Decimal("550.00"), False),
    ]


def test_a_bad_cell_is_named_by_file_row_line_and_column_and_nothing_is_loaded(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    accounts = write(
        tmp_path / "accounts.csv",
        ACCOUNTS_HEADER,
        "A1,Alpha,retail,1000,2026-01",
        '"A2","Beta, with a comma",retail,"12,50",2026-01',
    )

    code, output = run("load", "--database-url", database_url, "--tenant", "t1", str(accounts))

    assert code == 1
    assert "nothing was loaded" in output
    assert f"{accounts} row 2 (line 3), column revenue (value '12,50')" in output
    assert count(engine, Account, "t1") == 0


def test_metrics_for_an_unknown_account_refuse_the_accounts_too(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    accounts = write(tmp_path / "a.csv", ACCOUNTS_HEADER, "A1,Alpha,retail,1000,2026-01")
    metrics = write(tmp_path / "m.csv", METRICS_HEADER, "A1,2026-02,1,1,0,0", "B7,2026-02,1,1,0,0")

    code, output = run(
        "load", "--database-url", database_url, "--tenant", "t1", str(accounts), str(metrics)
    )

    assert code == 1
    assert f"{metrics} row 2 (line 3), column account_id (value 'B7')" in output
    assert count(engine, Account, "t1") == 0


def test_a_missing_column_names_the_header(database_url: str, tmp_path: Path) -> None:
    accounts = write(tmp_path / "a.csv", "account_id,name,revenue", "A1,Alpha,10")

    code, output = run("load", "--database-url", database_url, "--tenant", "t1", str(accounts))

    assert code == 1
    assert f"{accounts} header row, column industry" in output


def test_chunked_loads_report_rows_counted_over_the_whole_file(engine: Engine) -> None:
    factory = make_session_factory(engine)
    accounts = [
        {
            "account_id": f"A{i}",
            "name": "n",
            "industry": "i",
            "revenue": "1",
            "revenue_month": "2026-01",
        }
        for i in range(5)
    ]
    metrics = [
        {"account_id": account_id, "month": "2026-02", "revenue_growth_pct": "1",
         "active_users": "1", "support_tickets": "0", "nps": "0"}
        for account_id in ("A0", "A1", "A2", "A3", "Z9")
    ]  # fmt: skip

    with pytest.raises(UploadError) as raised, transaction(factory) as session:
        load_in_chunks(session, "t1", ACCOUNTS, accounts, chunk_rows=2)
        load_in_chunks(session, "t1", METRICS, metrics, chunk_rows=2)

    assert [(p.row, p.column, p.value) for p in raised.value.problems] == [(5, "account_id", "Z9")]
    assert count(engine, Account, "t1") == 0


def test_an_invalid_tenant_is_refused(database_url: str, tmp_path: Path) -> None:
    accounts = write(tmp_path / "a.csv", ACCOUNTS_HEADER, "A1,Alpha,retail,1000,2026-01")

    code, output = run(
        "load", "--database-url", database_url, "--tenant", "no spaces", str(accounts)
    )

    assert code == 1
    assert "is not a valid customer id" in output


# -- features and help -------------------------------------------------------------------------


def test_publishing_a_stage_swaps_the_whole_directory_atomically(tmp_path: Path) -> None:
    directory = tmp_path / "features"

    code, output = run(
        "features", "--rollout", str(EXAMPLE), "--stage", "week-3", "--features-dir", str(directory)
    )
    first = current_version(directory)
    run(
        "features", "--rollout", str(EXAMPLE), "--stage", "week-5", "--features-dir", str(directory)
    )

    assert code == 0
    assert "on: format_detection, temporal_analysis" in output
    assert first is not None and current_version(directory) not in (None, first)
    document = json.loads((directory / "features.json").read_text())
    assert document["stage"]["name"] == "week-5"
    assert (directory / "features.json").readlink() == Path(DATA_LINK) / "features.json"


def test_an_unknown_stage_lists_the_stages(tmp_path: Path) -> None:
    code, output = run(
        "features", "--rollout", str(EXAMPLE), "--stage", "week-9", "--features-dir", str(tmp_path)
    )

    assert code == 1
    assert "'week-9' is not a stage of insights-api; use live or one of week-1" in output


@pytest.mark.parametrize("command", ["serve", "seed", "load", "features", "demo"])
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert f"usage: flagstage-app {command}" in capsys.readouterr().out


# -- the demo server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    features = tmp_path / "features"
    env = {**os.environ, "ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("FEATURES_CONFIG_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flagstage_app.cli", "demo", "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path / 'demo.db'}", "--accounts", "12",
         "--rollout", str(EXAMPLE), "--stage", "week-4", "--features-dir", str(features),
         "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the demo server did not come up"
            time.sleep(0.2)
        yield base, features
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"curl -s {base}/api/feature-status -H 'X-Customer-ID: acme'" in output


@pytest.mark.slow
def test_the_demo_serves_the_seeded_data_and_flips_toggles_live(demo: tuple[str, Path]) -> None:
    base, features = demo
    question = {"query": "top accounts over the last 4 months", "query_type": "temporal_analysis"}
    acme = {"X-Customer-ID": "acme"}

    answered = httpx.post(f"{base}/api/rag-qdrant/query", json=question, headers=acme).json()
    assert answered["answered_by"] == "temporal_analysis"
    assert answered["data"]["window"] == ["2026-08", "2026-09", "2026-10", "2026-11"]
    assert len(answered["data"]["accounts"]) == 10

    code, _ = run(
        "features", "--rollout", str(EXAMPLE), "--stage", "week-1", "--features-dir", str(features)
    )
    assert code == 0
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/api/hot-reload-status").json()["stage"] != "week-1":
        assert time.monotonic() < deadline, "the app did not reload the published stage"
        time.sleep(0.05)

    fallen_back = httpx.post(f"{base}/api/rag-qdrant/query", json=question, headers=acme).json()
    assert fallen_back["fallback"]["from"] == "temporal_analysis"
