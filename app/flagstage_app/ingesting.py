"""Loading accounts and monthly metrics for a tenant: parse, check every row, then write.

An upload is all or nothing. Every row is checked before anything is written, and every
problem is reported at once with its row, column and value and what to write instead; if
any row is wrong, nothing is loaded. Rows that name an existing account (or account-month)
replace it. After a load, the tenant's monthly revenue is rebuilt in the same transaction.
The HTTP routes and the `flagstage-app load` command both come through `load_records`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session

from flagstage_app.models import Account, AccountMetric, Tenant
from flagstage_app.months import parse_month
from flagstage_app.revenue import materialize_monthly_revenue

logger = logging.getLogger(__name__)

ACCOUNTS = "accounts"
METRICS = "metrics"
DATASET_COLUMNS: dict[str, tuple[str, ...]] = {
    ACCOUNTS: ("account_id", "name", "industry", "revenue", "revenue_month"),
    METRICS: (
        "account_id",
        "month",
        "revenue_growth_pct",
        "active_users",
        "support_tickets",
        "nps",
    ),
}
MAX_REPORTED_PROBLEMS = 100
MAX_TEXT_LENGTH = {"account_id": 128, "name": 255, "industry": 128}
KEY_BATCH = 500


@dataclass(frozen=True)
class RowProblem:
    """One bad cell: `row` counts data rows from 1 (the CSV header is line 1, row 1 is line 2)."""

    row: int
    column: str
    value: Any
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class LoadReport:
    dataset: str
    tenant: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    accounts_affected: int = 0
    monthly_revenue_rows: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "tenant": self.tenant,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "monthly_revenue_rows": self.monthly_revenue_rows,
        }


class UploadError(Exception):
    """The upload could not be read or had bad rows; `problems` says where."""

    def __init__(self, message: str, problems: Sequence[RowProblem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems)


def parse_csv(text: str, dataset: str) -> list[dict[str, Any]]:
    """The rows of a CSV with a header row, as dicts; the header must name every column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    _check_header(header, dataset)
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    for number, row in enumerate(reader, start=1):
        if None in row:
            raise UploadError(
                f"row {number} (line {reader.line_num}) has more cells than the header; "
                "quote cells that contain commas",
                [RowProblem(number, "*", None, "more cells than the header has columns")],
            )
        rows.append(row)
    return rows


def parse_json(text: str, dataset: str) -> list[dict[str, Any]]:
    """The rows of a JSON array of objects keyed by the dataset's columns."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise UploadError(f"the body is not valid JSON: {err}") from err
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise UploadError(
            f"send a JSON array of objects with the keys {', '.join(DATASET_COLUMNS[dataset])}"
        )
    return document


def parse_upload(text: str, dataset: str, content_type: str | None) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON upload; JSON when the type says so or the body starts with `[`."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.endswith("json") or (not kind.endswith("csv") and text.lstrip().startswith("[")):
        return parse_json(text, dataset)
    return parse_csv(text, dataset)


def _check_header(header: Sequence[str], dataset: str) -> None:
    expected = DATASET_COLUMNS[dataset]
    missing = [name for name in expected if name not in header]
    if missing:
        raise UploadError(
            f"the header row lacks {', '.join(missing)}; a {dataset} CSV starts with the line "
            f"{','.join(expected)}",
            [RowProblem(0, name, None, "column missing from the header row") for name in missing],
        )


def _text(value: Any, column: str) -> str:
    if value is None or not str(value).strip():
        raise ValueError("is empty; every row needs a value here")
    result = str(value).strip()
    limit = MAX_TEXT_LENGTH.get(column)
    if limit is not None and len(result) > limit:
        raise ValueError(f"is longer than {limit} characters")
    return result


def _decimal(value: Any, *, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
    if isinstance(value, bool) or value is None or str(value).strip() == "":
        raise ValueError("is not a number; write digits with a '.' for decimals, e.g. 1250.50")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as err:
        raise ValueError(
            "is not a number; write digits with a '.' for decimals and no currency sign or "
            "thousands separator, e.g. 1250.50"
        ) from err
    if not number.is_finite():
        raise ValueError("is not a finite number")
    if low is not None and number < low:
        raise ValueError(f"is below {low}")
    if high is not None and number > high:
        raise ValueError(f"is above {high}")
    return number


def _count(value: Any) -> int:
    number = _decimal(value, low=Decimal(0))
    if number != number.to_integral_value():
        raise ValueError("is not a whole number")
    return int(number)


def _month(value: Any) -> str:
    text = str(value or "").strip()
    parse_month(text)
    return text


def _money(value: Any) -> Decimal:
    number = _decimal(value, low=Decimal(0), high=Decimal("1e17"))
    if number != number.quantize(Decimal("0.01")):
        raise ValueError("has more than two decimals; give the amount in cents at most")
    return number


CONVERTERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    ACCOUNTS: {
        "account_id": lambda v: _text(v, "account_id"),
        "name": lambda v: _text(v, "name"),
        "industry": lambda v: _text(v, "industry"),
        "revenue": _money,
        "revenue_month": _month,
    },
    METRICS: {
        "account_id": lambda v: _text(v, "account_id"),
        "month": _month,
        # -100% is the most revenue can shrink; the cap only catches misplaced decimal points.
        "revenue_growth_pct": lambda v: _decimal(v, low=Decimal(-100), high=Decimal(100000)),
        "active_users": _count,
        "support_tickets": _count,
        "nps": lambda v: _decimal(v, low=Decimal(-100), high=Decimal(100)),
    },
}


def check_rows(dataset: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`records` converted to column values; raises `UploadError` listing every bad cell."""
    converters = CONVERTERS[dataset]
    key_columns = ("account_id",) if dataset == ACCOUNTS else ("account_id", "month")
    problems: list[RowProblem] = []
    rows: list[dict[str, Any]] = []
    first_row_of: dict[tuple[Any, ...], int] = {}

    for number, record in enumerate(records, start=1):
        row: dict[str, Any] = {}
        for column, convert in converters.items():
            value = record.get(column)
            try:
                row[column] = convert(value)
            except ValueError as err:
                problems.append(RowProblem(number, column, value, f"{column} {err}"))
        if len(row) == len(converters):
            key = tuple(row[name] for name in key_columns)
            if key in first_row_of:
                problems.append(
                    RowProblem(
                        number,
                        key_columns[-1],
                        row[key_columns[-1]],
                        f"duplicates row {first_row_of[key]}; keep one row per "
                        + " and ".join(key_columns),
                    )
                )
            first_row_of.setdefault(key, number)
            rows.append(row)

    if problems:
        raise UploadError(_summary(dataset, problems), problems[:MAX_REPORTED_PROBLEMS])
    if not rows:
        raise UploadError(f"the upload has no {dataset} rows")
    return rows


def _summary(dataset: str, problems: Sequence[RowProblem]) -> str:
    first = problems[0]
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return (
        f"nothing was loaded: {dataset} row {first.row}, column {first.column}: "
        f"{first.message}{more}; fix the rows listed and upload the file again"
    )


def ensure_tenant(session: Session, tenant: str) -> None:
    exists = session.execute(select(Tenant.tenant_id).where(Tenant.tenant_id == tenant)).first()
    if exists is None:
        session.add(Tenant(tenant_id=tenant, created_at=datetime.now(UTC)))
        session.flush()


def _existing_keys(
    session: Session, tenant: str, dataset: str, rows: Sequence[Mapping[str, Any]]
) -> set[tuple[Any, ...]]:
    found: set[tuple[Any, ...]] = set()
    if dataset == ACCOUNTS:
        ids = [row["account_id"] for row in rows]
        for start in range(0, len(ids), KEY_BATCH):
            chunk = ids[start : start + KEY_BATCH]
            query = select(Account.account_id).where(
                Account.tenant_id == tenant, Account.account_id.in_(chunk)
            )
            found.update((account_id,) for account_id in session.scalars(query))
        return found
    keys = [(row["account_id"], row["month"]) for row in rows]
    for start in range(0, len(keys), KEY_BATCH):
        chunk = keys[start : start + KEY_BATCH]
        pairs = select(AccountMetric.account_id, AccountMetric.month).where(
            AccountMetric.tenant_id == tenant,
            tuple_(AccountMetric.account_id, AccountMetric.month).in_(chunk),
        )
        found.update(tuple(item) for item in session.execute(pairs))
    return found


def _check_accounts_exist(session: Session, tenant: str, rows: Sequence[Mapping[str, Any]]) -> None:
    wanted = sorted({row["account_id"] for row in rows})
    known: set[str] = set()
    for start in range(0, len(wanted), KEY_BATCH):
        chunk = wanted[start : start + KEY_BATCH]
        query = select(Account.account_id).where(
            Account.tenant_id == tenant, Account.account_id.in_(chunk)
        )
        known.update(session.scalars(query))
    problems = [
        RowProblem(
            number,
            "account_id",
            row["account_id"],
            f"account {row['account_id']!r} is not loaded for this customer; "
            "load it with the accounts upload first",
        )
        for number, row in enumerate(rows, start=1)
        if row["account_id"] not in known
    ]
    if problems:
        raise UploadError(_summary(METRICS, problems), problems[:MAX_REPORTED_PROBLEMS])


def load_records(
    session: Session,
    tenant: str,
    dataset: str,
    records: Iterable[Mapping[str, Any]],
    *,
    rebuild_revenue: bool = True,
) -> LoadReport:
    """Check and write `records` in the session's transaction; the caller commits.

    Raises `UploadError` before writing anything if a row is wrong.
    """
    rows = check_rows(dataset, records)
    ensure_tenant(session, tenant)
    if dataset == METRICS:
        _check_accounts_exist(session, tenant, rows)

    existing = _existing_keys(session, tenant, dataset, rows)
    model: type[Account] | type[AccountMetric] = Account if dataset == ACCOUNTS else AccountMetric
    key_of: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
        (lambda row: (row["account_id"],))
        if dataset == ACCOUNTS
        else (lambda row: (row["account_id"], row["month"]))
    )
    new = [{"tenant_id": tenant, **row} for row in rows if key_of(row) not in existing]
    changed = [{"tenant_id": tenant, **row} for row in rows if key_of(row) in existing]
    if new:
        session.execute(insert(model), new)
    if changed:
        session.execute(update(model), changed)

    report = LoadReport(dataset=dataset, tenant=tenant, rows=len(rows))
    report.inserted, report.updated = len(new), len(changed)
    if rebuild_revenue:
        report.monthly_revenue_rows = materialize_monthly_revenue(session, [tenant])
    logger.info(
        "tenant %s loaded %d %s rows (%d new, %d replaced)",
        tenant,
        report.rows,
        dataset,
        report.inserted,
        report.updated,
    )
    return report
