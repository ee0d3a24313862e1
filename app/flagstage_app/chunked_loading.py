"""Loading a large set of records in chunks, so a caller can show progress, still all or nothing.

Every record is checked first, as one upload, so the problems reported (and their row numbers)
are exactly those a single `load_records` call would report. The rows are then written chunk by
chunk through `load_records` in the caller's transaction, and a problem only the database can
see (a metric for an account that does not exist) is reported with its row in the whole file,
not in the chunk. Rebuilding monthly revenue is left to the caller, once, after the last
dataset of the tenant is in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from flagstage_app.ingesting import LoadReport, UploadError, check_rows, load_records

CHUNK_ROWS = 2000

ProgressCallback = Callable[[int], None]


def load_in_chunks(
    session: Session,
    tenant: str,
    dataset: str,
    records: Sequence[Mapping[str, Any]],
    *,
    on_rows: ProgressCallback | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport:
    """Check all of `records`, then write them `chunk_rows` at a time; the caller commits.

    Raises `UploadError` (with row numbers counted over all of `records`) before the caller's
    transaction can commit anything. `on_rows(n)` is called after each chunk of `n` rows.
    """
    check_rows(dataset, records)

    total = LoadReport(dataset=dataset, tenant=tenant)
    for start in range(0, len(records), chunk_rows):
        chunk = records[start : start + chunk_rows]
        try:
            report = load_records(session, tenant, dataset, chunk, rebuild_revenue=False)
        except UploadError as err:
            problems = [replace(problem, row=problem.row + start) for problem in err.problems]
            first = problems[0] if problems else None
            message = err.message
            if first is not None:
                message = (
                    f"nothing was loaded: {dataset} row {first.row}, column {first.column}: "
                    f"{first.message}"
                )
            raise UploadError(message, problems) from err
        total.rows += report.rows
        total.inserted += report.inserted
        total.updated += report.updated
        if on_rows is not None:
            on_rows(len(chunk))
    return total
