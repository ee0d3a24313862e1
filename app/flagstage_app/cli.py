"""`flagstage-app`: serve the insights API, seed the demo data, load CSV files, flip toggles.

The commands take their settings from the environment like the app does (`DATABASE_URL`,
`FEATURES_CONFIG_DIR`, `ADMIN_TOKEN`, ...); `--database-url` overrides the database. `demo` is
what `make run` starts: it seeds the demo data when the database has none, publishes a stage of
the example rollout into a features directory, and serves the app watching that directory.
Exit codes: 0 done, 1 the data or rollout was refused (nothing was written), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from flagstage.validation import TENANT_ID
from flagstage_app.chunked_loading import load_in_chunks
from flagstage_app.db import make_engine, make_session_factory, transaction
from flagstage_app.health import rebuild_health_scores
from flagstage_app.ingesting import (
    ACCOUNTS,
    METRICS,
    LoadReport,
    RowProblem,
    UploadError,
    parse_upload,
)
from flagstage_app.migrating import upgrade_database
from flagstage_app.models import MonthlyRevenue
from flagstage_app.publishing import (
    DEFAULT_ROLLOUT,
    LIVE_STAGE,
    PublishedStage,
    PublishingError,
    load_rollout,
    publish_stage,
    resolve_stage,
)
from flagstage_app.revenue import materialize_monthly_revenue
from flagstage_app.seeding import (
    DEMO_LAST_MONTH,
    clear_tenant,
    demo_plan,
    generate_tenant,
    seeded_tenants,
)
from flagstage_app.settings import Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_FEATURES_DIR = Path("var/features")
MAX_PROBLEMS_SHOWN = 20
TEMPORAL_QUESTION = "Which accounts have the highest revenue across last 4 months?"


class CommandError(Exception):
    """The command could not do its work; the message says why and what to do."""


# -- settings and database ---------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    url = getattr(args, "database_url", None)
    if url:
        settings = settings.model_copy(update={"database_url": url})
    return settings


@contextmanager
def _migrated_engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    try:
        if settings.run_migrations:
            upgrade_database(engine)
        yield engine
    finally:
        engine.dispose()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


# -- seed --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantSummary:
    tenant: str
    accounts: int
    metric_rows: int
    estimated_months: int
    last_month_revenue: str


def seed_demo_data(
    engine: Engine,
    *,
    accounts_per_tenant: int | None = None,
    force: bool = False,
    console: Console,
) -> list[TenantSummary] | None:
    """Write the demo dataset in one transaction; None when it is there and not `force`d."""
    plan = demo_plan(accounts_per_tenant)
    factory = make_session_factory(engine)
    with factory() as session:
        present = seeded_tenants(session, list(plan))
    if present and not force:
        console.print(
            f"demo data already present for {', '.join(present)}: seeding skipped "
            "(--force replaces it)",
            soft_wrap=True,
        )
        return None

    datasets = [generate_tenant(tenant, count) for tenant, count in plan.items()]
    total_rows = sum(len(item.accounts) + len(item.metrics) for item in datasets)
    with transaction(factory) as session, _progress(console) as progress:
        task = progress.add_task("seeding demo data", total=total_rows)

        def advance(rows: int) -> None:
            progress.advance(task, rows)

        for dataset in datasets:
            progress.update(task, description=f"seeding {dataset.tenant}")
            clear_tenant(session, dataset.tenant)
            load_in_chunks(session, dataset.tenant, ACCOUNTS, dataset.accounts, on_rows=advance)
            load_in_chunks(session, dataset.tenant, METRICS, dataset.metrics, on_rows=advance)
            progress.update(task, description=f"revenue of {dataset.tenant}")
            materialize_monthly_revenue(session, [dataset.tenant])
        progress.update(task, description="health scores")
        rebuild_health_scores(session)
        progress.update(task, description="seeded")
        return [
            _summarize(session, item.tenant, len(item.accounts), len(item.metrics))
            for item in datasets
        ]


def _summarize(session: Session, tenant: str, accounts: int, metric_rows: int) -> TenantSummary:
    of_tenant = MonthlyRevenue.tenant_id == tenant
    estimated = session.execute(
        select(func.count()).where(of_tenant, MonthlyRevenue.estimated.is_(True))
    ).scalar_one()
    last = session.execute(
        select(func.sum(MonthlyRevenue.revenue)).where(
            of_tenant, MonthlyRevenue.month == DEMO_LAST_MONTH
        )
    ).scalar_one()
    return TenantSummary(tenant, accounts, metric_rows, int(estimated), f"{last or 0:,.2f}")


def _print_seed_summary(console: Console, summaries: Sequence[TenantSummary]) -> None:
    table = Table(title=f"demo data (revenue of {DEMO_LAST_MONTH})")
    for column in ("tenant", "accounts", "metric rows", "estimated months", "revenue"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for item in summaries:
        table.add_row(
            item.tenant,
            str(item.accounts),
            str(item.metric_rows),
            str(item.estimated_months),
            item.last_month_revenue,
        )
    console.print(table)


def cmd_seed(args: argparse.Namespace, console: Console) -> int:
    with _migrated_engine(_settings(args)) as engine:
        summaries = seed_demo_data(
            engine, accounts_per_tenant=args.accounts, force=args.force, console=console
        )
    if summaries is not None:
        _print_seed_summary(console, summaries)
    return EXIT_OK


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    path: Path
    dataset: str
    records: list[dict[str, Any]]
    lines: list[int] | None
    """The line each data row starts on (CSV only), so problems can name it."""


def _csv_row_lines(text: str) -> list[int]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    lines: list[int] = []
    next(reader, None)
    previous_end = reader.line_num
    for _ in reader:
        lines.append(previous_end + 1)
        previous_end = reader.line_num
    return lines


def _read_input(path: Path, dataset: str) -> InputFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CommandError(f"{path} is not UTF-8 text; save it as UTF-8") from err
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}") from err
    is_json = path.suffix.lower() == ".json"
    try:
        records = parse_upload(text, dataset, "application/json" if is_json else "text/csv")
    except UploadError as err:
        raise _Refused(path, err, None) from err
    return InputFile(path, dataset, records, None if is_json else _csv_row_lines(text))


class _Refused(Exception):
    def __init__(self, path: Path, error: UploadError, lines: list[int] | None) -> None:
        super().__init__(error.message)
        self.path = path
        self.error = error
        self.lines = lines


def _where(problem: RowProblem, lines: Sequence[int] | None) -> str:
    if problem.row == 0:
        return "header row"
    if lines is not None and 0 < problem.row <= len(lines):
        return f"row {problem.row} (line {lines[problem.row - 1]})"
    return f"row {problem.row}" if lines is not None else f"item {problem.row}"


def _print_refusal(console: Console, refused: _Refused) -> None:
    error = refused.error
    if not error.problems:
        console.print(
            f"[bold red]refused[/] {refused.path}, nothing was loaded: {error.message}",
            highlight=False,
            soft_wrap=True,
        )
        return
    count = len(error.problems)
    console.print(
        f"[bold red]refused[/] {refused.path}, nothing was loaded "
        f"({count} problem{'' if count == 1 else 's'}):",
        highlight=False,
        soft_wrap=True,
    )
    for problem in error.problems[:MAX_PROBLEMS_SHOWN]:
        value = "" if problem.value is None else f" (value {problem.value!r})"
        console.print(
            f"  {refused.path} {_where(problem, refused.lines)}, column {problem.column}"
            f"{value}: {problem.message}",
            highlight=False,
            soft_wrap=True,
        )
    if count > MAX_PROBLEMS_SHOWN:
        console.print(f"  ... and {count - MAX_PROBLEMS_SHOWN} more")


def cmd_load(args: argparse.Namespace, console: Console) -> int:
    tenant: str = args.tenant
    if not TENANT_ID.fullmatch(tenant):
        raise CommandError(
            f"--tenant {tenant!r} is not a valid customer id: use 1-128 letters, digits, '.', "
            "'_', ':' or '-', starting and ending with a letter or digit"
        )
    try:
        inputs = [_read_input(args.accounts, ACCOUNTS)]
        if args.metrics is not None:
            inputs.append(_read_input(args.metrics, METRICS))
        with _migrated_engine(_settings(args)) as engine:
            reports = _load_inputs(engine, tenant, inputs, console)
    except _Refused as refused:
        _print_refusal(console, refused)
        return EXIT_REFUSED

    for report in reports:
        console.print(
            f"{tenant}: {report.rows} {report.dataset} rows loaded "
            f"({report.inserted} new, {report.updated} replaced)"
        )
    return EXIT_OK


def _load_inputs(
    engine: Engine, tenant: str, inputs: Sequence[InputFile], console: Console
) -> list[LoadReport]:
    factory = make_session_factory(engine)
    reports: list[LoadReport] = []
    with transaction(factory) as session, _progress(console) as progress:
        for item in inputs:
            task = progress.add_task(f"{item.dataset} ({item.path.name})", total=len(item.records))
            advance = partial(progress.advance, task)
            try:
                reports.append(
                    load_in_chunks(session, tenant, item.dataset, item.records, on_rows=advance)
                )
            except UploadError as err:
                raise _Refused(item.path, err, item.lines) from err
        task = progress.add_task("monthly revenue", total=1)
        materialize_monthly_revenue(session, [tenant])
        progress.advance(task)
    return reports


# -- features ----------------------------------------------------------------------------------


def _features_dir(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.features_dir
    if chosen is None:
        from_env = os.environ.get("FEATURES_CONFIG_DIR")
        chosen = Path(from_env) if from_env else DEFAULT_FEATURES_DIR
    return chosen


def _publish(args: argparse.Namespace) -> PublishedStage:
    try:
        rollout = load_rollout(args.rollout)
        index = resolve_stage(rollout, args.stage)
    except PublishingError as err:
        raise CommandError(str(err)) from err
    return publish_stage(rollout, index, _features_dir(args))


def _describe_published(published: PublishedStage) -> str:
    rendered = published.rendered
    stage = rendered.stage_name or "(before the first stage)"
    on = ", ".join(rendered.enabled) or "nothing"
    partial = f"; partly on: {', '.join(rendered.partial)}" if rendered.partial else ""
    note = "published" if published.changed else "unchanged"
    return (
        f"stage {stage} {note} in {published.directory} ({rendered.config_hash[:19]}...)\n"
        f"  on: {on}{partial}"
    )


def cmd_features(args: argparse.Namespace, console: Console) -> int:
    console.print(_describe_published(_publish(args)), highlight=False, soft_wrap=True)
    return EXIT_OK


# -- serve and demo ----------------------------------------------------------------------------


def _serve(settings: Settings, host: str, port: int, log_level: str) -> None:
    import uvicorn

    from flagstage_app.main import create_app

    # A server's log is its record of reloads and refreshes; the batch commands stay quiet.
    logging.getLogger().setLevel(log_level.upper())
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    import uvicorn

    if args.reload:
        logging.getLogger().setLevel(args.log_level.upper())
        # Reloading needs the app by import string; settings then come from the environment.
        if args.database_url:
            os.environ["DATABASE_URL"] = args.database_url
        uvicorn.run(
            "flagstage_app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            reload=True,
            log_level=args.log_level,
        )
    else:
        _serve(_settings(args), args.host, args.port, args.log_level)
    return EXIT_OK


def demo_instructions(
    *, base_url: str, token: str, features_dir: Path, stage: str | None, on: Sequence[str]
) -> str:
    """What the demo prints before serving: where it runs and commands to try against it."""
    query = f'{{"query": "{TEMPORAL_QUESTION}", "query_type": "temporal_analysis"}}'
    return "\n".join(
        [
            f"flagstage insights API on {base_url}  (OpenAPI docs: {base_url}/docs)",
            f"  features: {features_dir} at stage {stage or '(none)'}; on: "
            + (", ".join(on) or "nothing"),
            f"  admin token: {token}",
            "",
            "Ask, look, refresh:",
            f"  curl -s {base_url}/api/rag-qdrant/query -H 'X-Customer-ID: acme' \\",
            f"       -H 'Content-Type: application/json' -d '{query}'",
            f"  curl -s {base_url}/api/feature-status -H 'X-Customer-ID: acme'",
            f"  curl -s {base_url}/api/hot-reload-status",
            f"  curl -s -X POST {base_url}/api/refresh-data/customer_data "
            f"-H 'Authorization: Bearer {token}'",
            f"  curl -s {base_url}/healthz",
            "",
            "Flip toggles live from another terminal (the app reloads within a second):",
            "  make run-stage STAGE=week-1   # temporal_analysis off: the query above falls back",
            f"  .venv/bin/flagstage-app features --stage week-5 --features-dir {features_dir}",
            "",
        ]
    )


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    with _migrated_engine(settings) as engine:
        summaries = seed_demo_data(engine, accounts_per_tenant=args.accounts, console=console)
    if summaries is not None:
        _print_seed_summary(console, summaries)

    published = _publish(args)
    console.print(_describe_published(published), highlight=False, soft_wrap=True)
    features_dir = published.directory.resolve()
    os.environ["FEATURES_CONFIG_DIR"] = str(features_dir)
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        token = secrets.token_urlsafe(18)
    settings = settings.model_copy(
        update={"features_config_dir": features_dir, "admin_token": SecretStr(token)}
    )

    console.print(
        demo_instructions(
            base_url=f"http://{args.host}:{args.port}",
            token=token,
            features_dir=published.directory,
            stage=published.rendered.stage_name,
            on=published.rendered.enabled,
        ),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    _serve(settings, args.host, args.port, args.log_level)
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagstage-app",
        description="The flagstage insights API: serve it, seed demo data, load a tenant's "
        "CSV files, publish feature toggles into a watched directory.",
        epilog="Settings come from the environment (DATABASE_URL, FEATURES_CONFIG_DIR, "
        "ADMIN_TOKEN, QDRANT_URL, OPENAI_API_KEY, ...). Exit codes: 0 done, 1 refused, "
        "2 bad arguments.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the app does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description)

    def database_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--database-url",
            metavar="URL",
            help="SQLAlchemy URL of the database (default: DATABASE_URL, else "
            "sqlite:///./var/flagstage.db)",
        )

    def server_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
        command.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
        command.add_argument(
            "--log-level",
            default="info",
            choices=["critical", "error", "warning", "info", "debug"],
            help="uvicorn's log level",
        )

    def rollout_options(command: argparse.ArgumentParser, default_stage: str) -> None:
        command.add_argument(
            "--rollout",
            type=Path,
            default=DEFAULT_ROLLOUT,
            metavar="FILE",
            help=f"the FeatureRollout manifest (default: {DEFAULT_ROLLOUT})",
        )
        command.add_argument(
            "--stage",
            default=default_stage,
            metavar="NAME",
            help=f"the stage to publish, or '{LIVE_STAGE}' for the one the schedule has live "
            f"now (default: {default_stage})",
        )
        command.add_argument(
            "--features-dir",
            type=Path,
            metavar="DIR",
            help=f"the directory the app watches (default: FEATURES_CONFIG_DIR, else "
            f"{DEFAULT_FEATURES_DIR})",
        )

    serve = add(
        "serve",
        "serve the API with uvicorn",
        "Serve the insights API with uvicorn. Settings come from the environment; the schema "
        "is migrated at start-up.",
    )
    server_options(serve)
    database_option(serve)
    serve.add_argument(
        "--reload", action="store_true", help="restart when the code changes (development)"
    )
    serve.set_defaults(handler=cmd_serve)

    seed = add(
        "seed",
        "write the demo dataset",
        "Write the deterministic demo dataset: tenants acme, globex and initech, hundreds of "
        f"accounts each, 24 months of metrics up to {DEMO_LAST_MONTH} with negative months and "
        "a few gaps. Skipped when any demo tenant already has accounts, unless --force.",
    )
    database_option(seed)
    seed.add_argument(
        "--accounts", type=int, metavar="N", help="accounts per tenant (default: 400/300/250)"
    )
    seed.add_argument(
        "--force", action="store_true", help="replace the demo tenants' accounts and metrics"
    )
    seed.set_defaults(handler=cmd_seed)

    load = add(
        "load",
        "load a tenant's accounts (and metrics) CSV",
        "Load a tenant's accounts CSV and, optionally, its monthly metrics CSV, all or nothing: "
        "every row is checked first, and if any row is wrong nothing is written and each bad "
        "row and column is printed. Rows that name an existing account (or account-month) "
        "replace it. Accounts columns: account_id,name,industry,revenue,revenue_month. Metrics "
        "columns: account_id,month,revenue_growth_pct,active_users,support_tickets,nps. A "
        ".json file holds an array of objects with the same keys.",
    )
    database_option(load)
    load.add_argument("--tenant", required=True, help="the customer id the data belongs to")
    load.add_argument("accounts", type=Path, help="accounts CSV")
    load.add_argument("metrics", type=Path, nargs="?", help="monthly metrics CSV")
    load.set_defaults(handler=cmd_load)

    features = add(
        "features",
        "publish a rollout stage into the features directory",
        "Render the rollout at a stage and publish it into the features directory with the "
        "kubelet's atomic update sequence; an app watching the directory reloads live.",
    )
    rollout_options(features, LIVE_STAGE)
    features.set_defaults(handler=cmd_features)

    demo = add(
        "demo",
        "seed, publish a stage and serve: what `make run` does",
        "Seed the demo data unless present, publish a stage of the rollout into the features "
        "directory, and serve the API watching it, printing commands to try.",
    )
    server_options(demo)
    database_option(demo)
    rollout_options(demo, LIVE_STAGE)
    demo.add_argument(
        "--accounts",
        type=int,
        metavar="N",
        help="accounts per tenant when seeding (default: 400/300/250)",
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = console or Console()
    try:
        code: int = args.handler(args, out)
    except CommandError as err:
        out.print(f"[bold red]error[/]: {err}", highlight=False, soft_wrap=True)
        return EXIT_REFUSED
    return code


if __name__ == "__main__":
    sys.exit(main())
