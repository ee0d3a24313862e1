"""One upload of a data file, through whichever paths the tenant's toggles switch on.

Five features shape an upload, each with a baseline it falls back to when it is off for the
tenant or fails at runtime:

- `format_detection`: the format (and CSV delimiter) is read from the content and the dataset
  from the columns. Off, the caller names `format` and `dataset`, and a named format the
  content contradicts is refused.
- `multi_format_support`: JSON, NDJSON and XLSX are accepted. Off, only CSV is.
- `enhanced_upload`: every row is checked and reported (row, column, value, reason),
  `mode=partial` loads the good rows, the same file twice loads once (its SHA-256 is recorded
  per tenant), and size and row limits apply. Off, the plain all-or-nothing load.
- `real_time_ingestion`: the revenue and health scores of the accounts loaded are rewritten in
  the upload's transaction. Off, they wait for the next `customer_data` / `health_scores`
  refresh.
- `event_driven_rag`: after the commit, an event re-indexes the accounts' knowledge-base
  documents. Off, the knowledge base changes only on a `rag_knowledge_base` refresh.

The toggles come in already evaluated for the tenant (`UploadToggles`), from the snapshot the
request is pinned to. HTTP concerns stay in `flagstage_app.routes.uploads`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from flagstage_app import formats
from flagstage_app.db import transaction
from flagstage_app.errors import (
    BadRequestError,
    FormatMismatchError,
    IngestError,
    UnsupportedFormatError,
    UploadTooLargeError,
)
from flagstage_app.ingesting import (
    ACCOUNTS,
    CONVERTERS,
    DATASET_COLUMNS,
    METRICS,
    RowProblem,
    UploadError,
    ensure_tenant,
    load_records,
)
from flagstage_app.models import Account, UploadReceipt
from flagstage_app.recomputing import refresh_accounts
from flagstage_app.toggles.metrics import FALLBACK_ERROR, FALLBACK_OFF

logger = logging.getLogger(__name__)

FORMAT_DETECTION = "format_detection"
MULTI_FORMAT_SUPPORT = "multi_format_support"
ENHANCED_UPLOAD = "enhanced_upload"
REAL_TIME_INGESTION = "real_time_ingestion"
EVENT_DRIVEN_RAG = "event_driven_rag"
UPLOAD_FEATURES = (
    FORMAT_DETECTION,
    MULTI_FORMAT_SUPPORT,
    ENHANCED_UPLOAD,
    REAL_TIME_INGESTION,
    EVENT_DRIVEN_RAG,
)

STRICT, PARTIAL = "strict", "partial"
MODES = (STRICT, PARTIAL)
# The baseline path's only limit; enhanced_upload applies the tighter configured ones.
BASELINE_MAX_BYTES = 64 * 1024 * 1024
MAX_REPORTED_ROWS = 1000

FallbackRecorder = Callable[[str, str], None]
ChangeListener = Callable[[str, Sequence[str]], None]


@dataclass(frozen=True)
class UploadToggles:
    """The upload features, each already evaluated for the uploading tenant."""

    format_detection: bool = False
    multi_format_support: bool = False
    enhanced_upload: bool = False
    real_time_ingestion: bool = False
    event_driven_rag: bool = False

    @classmethod
    def of(cls, is_enabled: Callable[[str], bool]) -> UploadToggles:
        return cls(**{name: is_enabled(name) for name in UPLOAD_FEATURES})


@dataclass(frozen=True)
class UploadedFile:
    """What the caller sent: the bytes, and the format, dataset and mode it named (if any)."""

    tenant: str
    content: bytes
    declared_format: str | None = None
    declared_dataset: str | None = None
    mode: str | None = None


@dataclass
class UploadOutcome:
    """What happened to one upload; `to_json` is the response body."""

    tenant: str
    dataset: str
    file_format: str
    mode: str
    content_hash: str
    detected: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    loaded: int = 0
    inserted: int = 0
    updated: int = 0
    duplicate: bool = False
    rejected: list[RowProblem] = field(default_factory=list)
    derived_data: dict[str, Any] = field(default_factory=dict)
    knowledge_base: str = ""
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dataset": self.dataset,
            "format": self.file_format,
            "detected": self.detected,
            "mode": self.mode,
            "content_hash": self.content_hash,
            "duplicate": self.duplicate,
            "rows": self.rows,
            "loaded": self.loaded,
            "inserted": self.inserted,
            "updated": self.updated,
            "rejected": [report_row(problem) for problem in self.rejected[:MAX_REPORTED_ROWS]],
            "rejected_count": len(self.rejected),
            "derived_data": self.derived_data,
            "knowledge_base": self.knowledge_base,
            "fallbacks": self.fallbacks,
        }


def report_row(problem: RowProblem) -> dict[str, Any]:
    """One line of the validation report: row, column, value and the reason it was refused."""
    value = problem.value
    if value is not None and not isinstance(value, str | int | float | bool):
        value = str(value)
    return {"row": problem.row, "column": problem.column, "value": value, "reason": problem.message}


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class UploadPipeline:
    """Runs uploads for one app: its database, limits, and whom to tell about changes."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        max_bytes: int,
        max_rows: int,
        on_change: ChangeListener | None = None,
    ) -> None:
        self.factory = factory
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.on_change = on_change

    def run(
        self, upload: UploadedFile, toggles: UploadToggles, record_fallback: FallbackRecorder
    ) -> UploadOutcome:
        """Load `upload` as `toggles` allow; raises an `AppError` when it is refused."""
        fallbacks: list[dict[str, str]] = []

        def fell_back(feature: str, reason: str, detail: str) -> None:
            record_fallback(feature, reason)
            fallbacks.append({"feature": feature, "reason": reason, "detail": detail})

        for feature in (FORMAT_DETECTION, ENHANCED_UPLOAD, REAL_TIME_INGESTION):
            if not getattr(toggles, feature):
                record_fallback(feature, FALLBACK_OFF)

        limit = self.max_bytes if toggles.enhanced_upload else BASELINE_MAX_BYTES
        if len(upload.content) > limit:
            raise UploadTooLargeError(
                f"the upload is {len(upload.content)} bytes, over the limit of {limit}; "
                "split it into smaller files"
            )
        mode = upload.mode or STRICT
        if mode not in MODES:
            raise BadRequestError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == PARTIAL and not toggles.enhanced_upload:
            raise BadRequestError(
                f"mode=partial needs the {ENHANCED_UPLOAD} feature, which is off for this "
                "customer; send the file without it to load it all or nothing"
            )

        file_format, delimiter, detected = self._resolve_format(upload, toggles, fell_back)
        if file_format != formats.CSV and not toggles.multi_format_support:
            raise UnsupportedFormatError(
                f"{file_format.upper()} uploads need the {MULTI_FORMAT_SUPPORT} feature, which "
                "is off for this customer; send the data as CSV",
            )
        try:
            columns, records = formats.read_records(
                upload.content, file_format, delimiter=delimiter
            )
        except formats.FormatError as err:
            raise IngestError(
                f"the {file_format.upper()} file cannot be read: {err.message}"
            ) from err
        except Exception as err:
            if file_format == formats.CSV:
                raise
            # A reader of the extra formats failed on its own: CSV, the baseline, still works,
            # so the caller gets a clear way forward instead of a server error.
            logger.exception("%s reader failed for %s", file_format, upload.tenant)
            record_fallback(MULTI_FORMAT_SUPPORT, FALLBACK_ERROR)
            raise IngestError(
                f"the {file_format.upper()} reader failed ({type(err).__name__}), so only CSV "
                f"uploads work right now; send the data as CSV"
            ) from err
        dataset = self._resolve_dataset(upload, toggles, columns, detected, fell_back)
        _check_columns(dataset, columns)

        outcome = UploadOutcome(
            tenant=upload.tenant,
            dataset=dataset,
            file_format=file_format,
            mode=mode,
            content_hash=content_hash(upload.content),
            detected=detected,
            rows=len(records),
            fallbacks=fallbacks,
        )
        enhanced = toggles.enhanced_upload
        if enhanced and len(records) > self.max_rows:
            raise IngestError(
                f"the upload has {len(records)} rows, over the limit of {self.max_rows}; "
                "split it into smaller files"
            )

        try:
            if enhanced:
                try:
                    self._write(outcome, records, toggles, fell_back, self._load_enhanced)
                except (IngestError, _Duplicate):
                    raise
                except UploadError as err:
                    # The caller's data is wrong, not the feature: no fallback, no traceback.
                    raise IngestError(
                        err.message, details=[problem.to_json() for problem in err.problems]
                    ) from err
                except Exception as err:
                    # Its transaction rolled back: load the plain way instead.
                    logger.exception("enhanced upload of %s failed", upload.tenant)
                    fell_back(ENHANCED_UPLOAD, FALLBACK_ERROR, f"{type(err).__name__}: {err}")
                    outcome.rejected = []
                    self._write(outcome, records, toggles, fell_back, self._load_plain)
            else:
                self._write(outcome, records, toggles, fell_back, self._load_plain)
        except _Duplicate as duplicate:
            outcome.duplicate = True
            outcome.detected["first_loaded_at"] = duplicate.received_at
            outcome.derived_data = {"status": "unchanged: this file was loaded before"}
            outcome.knowledge_base = "unchanged: this file was loaded before"
            return outcome

        outcome.knowledge_base = self._announce(outcome, toggles, fell_back)
        return outcome

    def _write(
        self,
        outcome: UploadOutcome,
        records: Sequence[Mapping[str, Any]],
        toggles: UploadToggles,
        fell_back: Callable[[str, str, str], None],
        load: Callable[[Session, UploadOutcome, Sequence[Mapping[str, Any]]], None],
    ) -> None:
        try:
            with transaction(self.factory) as session:
                ensure_tenant(session, outcome.tenant)
                load(session, outcome, records)
                self._refresh_derived(session, outcome, toggles, fell_back)
        except IntegrityError:
            # The same file, loaded by a concurrent request that committed first.
            with self.factory() as session:
                earlier = session.get(UploadReceipt, (outcome.tenant, outcome.content_hash))
            if earlier is None:
                raise
            raise _Duplicate(earlier.received_at.isoformat()) from None

    # -- format and dataset ------------------------------------------------------------------

    def _resolve_format(
        self,
        upload: UploadedFile,
        toggles: UploadToggles,
        fell_back: Callable[[str, str, str], None],
    ) -> tuple[str, str, dict[str, Any]]:
        declared = upload.declared_format.lower() if upload.declared_format else None
        if declared is not None and declared not in formats.FORMATS:
            raise BadRequestError(f"format {declared!r} is not one of {', '.join(formats.FORMATS)}")
        failed = False
        if toggles.format_detection:
            try:
                found = formats.detect_format(upload.content)
                delimiter = (
                    formats.sniff_delimiter(formats.decode_text(upload.content))
                    if found == formats.CSV
                    else ","
                )
            except formats.FormatError as err:
                raise IngestError(err.message) from err
            except Exception as err:
                logger.exception("format detection failed for %s", upload.tenant)
                fell_back(FORMAT_DETECTION, FALLBACK_ERROR, f"{type(err).__name__}: {err}")
                failed = True
            else:
                if declared is not None and declared != found:
                    raise FormatMismatchError(
                        f"the upload was named {declared} but its content is {found}; "
                        "name the right format or leave it out"
                    )
                detected = {"format": found}
                if found == formats.CSV:
                    detected["delimiter"] = formats.DELIMITER_NAMES[delimiter]
                return found, delimiter, detected

        if declared is None:
            raise BadRequestError(
                "name the file's format (format=csv) and dataset (dataset=accounts or metrics): "
                f"the {FORMAT_DETECTION} feature that would read them from the file is off or "
                "failed for this customer"
            )
        if not failed:
            # Detection is off: it only checks what the caller named, it decides nothing.
            _check_declared_format(upload.content, declared)
        return declared, ",", {}

    def _resolve_dataset(
        self,
        upload: UploadedFile,
        toggles: UploadToggles,
        columns: Sequence[str],
        detected: dict[str, Any],
        fell_back: Callable[[str, str, str], None],
    ) -> str:
        declared = upload.declared_dataset
        if declared is not None and declared not in DATASET_COLUMNS:
            raise BadRequestError(
                f"dataset {declared!r} is not one of {', '.join(DATASET_COLUMNS)}"
            )
        if toggles.format_detection and "format" in detected:
            try:
                found = formats.detect_dataset(columns)
            except formats.FormatError as err:
                if declared is None:
                    raise IngestError(err.message) from err
                found = declared
            if declared is not None and declared != found:
                raise FormatMismatchError(
                    f"the upload was named {declared} but its columns are those of {found}"
                )
            detected["dataset"] = found
            return found
        if declared is None:
            raise BadRequestError(
                "name the dataset (dataset=accounts or metrics): the "
                f"{FORMAT_DETECTION} feature that would tell it from the columns is off or "
                "failed for this customer"
            )
        return declared

    # -- loading -----------------------------------------------------------------------------

    def _load_plain(
        self, session: Session, outcome: UploadOutcome, records: Sequence[Mapping[str, Any]]
    ) -> None:
        try:
            report = load_records(
                session, outcome.tenant, outcome.dataset, records, rebuild_revenue=False
            )
        except UploadError as err:
            raise IngestError(
                err.message, details=[problem.to_json() for problem in err.problems]
            ) from err
        outcome.loaded, outcome.inserted, outcome.updated = (
            report.rows,
            report.inserted,
            report.updated,
        )
        outcome.accounts = sorted({str(record["account_id"]).strip() for record in records})

    def _load_enhanced(
        self, session: Session, outcome: UploadOutcome, records: Sequence[Mapping[str, Any]]
    ) -> None:
        earlier = session.get(UploadReceipt, (outcome.tenant, outcome.content_hash))
        if earlier is not None:
            raise _Duplicate(earlier.received_at.isoformat())

        good, problems = validate_rows(session, outcome.tenant, outcome.dataset, records)
        outcome.rejected = problems
        if problems and (outcome.mode == STRICT or not good):
            first = problems[0]
            raise IngestError(
                f"nothing was loaded: {len(problems)} problems in "
                f"{len({p.row for p in problems})} rows, the first in row {first.row}, column "
                f"{first.column}: {first.message}"
                + ("; fix them, or send mode=partial to load the good rows" if good else ""),
                details=[report_row(problem) for problem in problems[:MAX_REPORTED_ROWS]],
            )

        receipt = UploadReceipt(
            tenant_id=outcome.tenant,
            content_hash=outcome.content_hash,
            dataset=outcome.dataset,
            file_format=outcome.file_format,
            rows_loaded=len(good),
            rows_rejected=len({p.row for p in problems}),
            received_at=datetime.now(UTC),
        )
        report = load_records(session, outcome.tenant, outcome.dataset, good, rebuild_revenue=False)
        outcome.loaded, outcome.inserted, outcome.updated = (
            report.rows,
            report.inserted,
            report.updated,
        )
        outcome.accounts = sorted({str(record["account_id"]).strip() for record in good})
        # Last, so a concurrent twin that committed first fails here and is told so.
        session.add(receipt)
        session.flush()

    # -- after the load ----------------------------------------------------------------------

    def _refresh_derived(
        self,
        session: Session,
        outcome: UploadOutcome,
        toggles: UploadToggles,
        fell_back: Callable[[str, str, str], None],
    ) -> None:
        deferred = {
            "status": "deferred",
            "until": "the next customer_data refresh (revenue) and health_scores refresh",
        }
        if not toggles.real_time_ingestion:
            outcome.derived_data = deferred
            return
        try:
            with session.begin_nested():
                update = refresh_accounts(session, outcome.tenant, outcome.accounts)
        except Exception as err:
            logger.exception("real-time refresh of %s failed; deferred", outcome.tenant)
            fell_back(REAL_TIME_INGESTION, FALLBACK_ERROR, f"{type(err).__name__}: {err}")
            outcome.derived_data = deferred
            return
        outcome.derived_data = {"status": "updated", "accounts": len(outcome.accounts)}
        outcome.derived_data.update(update.to_json())

    def _announce(
        self,
        outcome: UploadOutcome,
        toggles: UploadToggles,
        fell_back: Callable[[str, str, str], None],
    ) -> str:
        unchanged = "unchanged until the next rag_knowledge_base refresh"
        if not toggles.event_driven_rag or self.on_change is None:
            return unchanged
        try:
            self.on_change(outcome.tenant, outcome.accounts)
        except Exception as err:
            logger.exception("could not queue the re-index of %s", outcome.tenant)
            fell_back(EVENT_DRIVEN_RAG, FALLBACK_ERROR, f"{type(err).__name__}: {err}")
            return unchanged
        return f"re-index of {len(outcome.accounts)} accounts queued"


class _Duplicate(Exception):
    def __init__(self, received_at: str) -> None:
        super().__init__(received_at)
        self.received_at = received_at


def _check_declared_format(content: bytes, declared: str) -> None:
    try:
        actual = formats.detect_format(content)
    except formats.FormatError as err:
        raise FormatMismatchError(
            f"the upload was named {declared} but cannot be read as such: {err.message}"
        ) from err
    if actual != declared:
        raise FormatMismatchError(
            f"the upload was named {declared} but its content is {actual}; "
            f"name the right format (format={actual})"
        )


def _check_columns(dataset: str, columns: Sequence[str]) -> None:
    expected = DATASET_COLUMNS[dataset]
    missing = [name for name in expected if name not in columns]
    if missing:
        raise IngestError(
            f"the {dataset} file lacks the columns {', '.join(missing)}; it needs "
            f"{', '.join(expected)}",
            details=[
                report_row(RowProblem(0, name, None, "column missing from the header"))
                for name in missing
            ],
        )


def validate_rows(
    session: Session, tenant: str, dataset: str, records: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[RowProblem]]:
    """The rows that would load, and a problem per bad cell of the others (rows from 1).

    A row is good when every cell converts, it repeats no earlier row's key, and (for metrics)
    its account is loaded for the tenant.
    """
    converters = CONVERTERS[dataset]
    known: set[str] = set()
    if dataset == METRICS:
        known = set(session.scalars(select(Account.account_id).where(Account.tenant_id == tenant)))
    good: list[Mapping[str, Any]] = []
    problems: list[RowProblem] = []
    first_row_of: dict[tuple[Any, ...], int] = {}
    for number, record in enumerate(records, start=1):
        row: dict[str, Any] = {}
        bad: list[RowProblem] = []
        for column, convert in converters.items():
            value = record.get(column)
            try:
                row[column] = convert(value)
            except ValueError as err:
                bad.append(RowProblem(number, column, value, f"{column} {err}"))
        if not bad:
            key = (row["account_id"],) if dataset == ACCOUNTS else (row["account_id"], row["month"])
            if key in first_row_of:
                bad.append(
                    RowProblem(
                        number,
                        "account_id" if dataset == ACCOUNTS else "month",
                        key[-1],
                        f"repeats row {first_row_of[key]}; keep one row per key",
                    )
                )
            elif dataset == METRICS and row["account_id"] not in known:
                bad.append(
                    RowProblem(
                        number,
                        "account_id",
                        row["account_id"],
                        f"account {row['account_id']!r} is not loaded for this customer; "
                        "upload it with the accounts first",
                    )
                )
            first_row_of.setdefault(key, number)
        if bad:
            problems.extend(bad)
        else:
            good.append(record)
    return good, problems
