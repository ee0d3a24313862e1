"""Reading a data file whatever its format: CSV, a JSON array, NDJSON or an XLSX workbook.

`detect_format` decides from the bytes alone (an XLSX workbook is a ZIP archive holding
`xl/workbook.xml`; JSON starts with `[`, NDJSON with `{`; anything else is CSV), and
`sniff_delimiter` picks the CSV delimiter (comma, semicolon or tab) that splits the first lines
into the same number of cells. `detect_dataset` names the dataset (accounts or metrics) whose
columns the header holds. `read_records` turns a file of a known format into the header and
one dict per row, with every cell as the loaders expect it: month cells that a spreadsheet
stored as dates come back as `YYYY-MM`. Checking the values is `flagstage_app.ingesting`'s
business; deciding which formats a tenant may send is `flagstage_app.uploading`'s.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook

from flagstage_app.ingesting import DATASET_COLUMNS

CSV = "csv"
JSON = "json"
NDJSON = "ndjson"
XLSX = "xlsx"
FORMATS = (CSV, JSON, NDJSON, XLSX)
ZIP_SIGNATURE = b"PK\x03\x04"
XLSX_WORKBOOK_PART = "xl/workbook.xml"
CSV_DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
SNIFF_LINES = 20


class FormatError(Exception):
    """The file cannot be read as the format it is (or was said to be)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decode_text(raw: bytes) -> str:
    """`raw` as UTF-8 text without a byte-order mark."""
    try:
        return raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as err:
        raise FormatError(
            "the file is neither an XLSX workbook nor UTF-8 text; save it as UTF-8"
        ) from err


def detect_format(raw: bytes) -> str:
    """The format of `raw`, from its content alone."""
    if raw.startswith(ZIP_SIGNATURE):
        if not _is_workbook(raw):
            raise FormatError(
                "the file is a ZIP archive but not an XLSX workbook; send the workbook itself"
            )
        return XLSX
    text = decode_text(raw).lstrip()
    if text.startswith("["):
        return JSON
    if text.startswith("{"):
        return NDJSON
    return CSV


def _is_workbook(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return XLSX_WORKBOOK_PART in archive.namelist()
    except zipfile.BadZipFile:
        return False


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most cells, equally on every line."""
    lines = [line for line in text.splitlines()[:SNIFF_LINES] if line.strip()]
    best, best_cells = ",", 1
    for delimiter in CSV_DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (cells := counts.pop()) > best_cells:
            best, best_cells = delimiter, cells
    return best


def detect_dataset(columns: Sequence[str]) -> str:
    """The dataset whose columns `columns` has; the message names what is missing otherwise."""
    present = set(columns)
    missing = {
        dataset: [name for name in expected if name not in present]
        for dataset, expected in DATASET_COLUMNS.items()
    }
    complete = [dataset for dataset, absent in missing.items() if not absent]
    if len(complete) == 1:
        return complete[0]
    closest = min(missing, key=lambda dataset: len(missing[dataset]))
    raise FormatError(
        "cannot tell which dataset the file holds: its columns are "
        f"{', '.join(columns) or 'none'}; a {closest} file also needs "
        f"{', '.join(missing[closest])}"
    )


def read_records(
    raw: bytes, file_format: str, *, delimiter: str = ","
) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and the rows of `raw`, read as `file_format`."""
    if file_format == XLSX:
        return _read_xlsx(raw)
    text = decode_text(raw)
    if file_format == CSV:
        return _read_csv(text, delimiter)
    if file_format == JSON:
        return _keyed(_read_json_array(text))
    if file_format == NDJSON:
        return _keyed(_read_ndjson(text))
    raise FormatError(f"unknown format {file_format!r}; use one of {', '.join(FORMATS)}")


def _read_csv(text: str, delimiter: str) -> tuple[list[str], list[dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip() for name in next(reader, [])]
    rows: list[dict[str, Any]] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            raise FormatError(
                f"line {reader.line_num} has {len(cells)} cells but the header has "
                f"{len(header)}; quote cells that contain the delimiter "
                f"({DELIMITER_NAMES.get(delimiter, delimiter)})"
            )
        rows.append(dict(zip(header, cells, strict=False)))
    return header, rows


def _read_json_array(text: str) -> list[Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"the file is not valid JSON: {err}") from err
    if not isinstance(document, list):
        raise FormatError("a JSON upload is an array of objects, one per row")
    return document


def _read_ndjson(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise FormatError(f"line {number} is not a JSON object: {err}") from err
    return items


def _keyed(items: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise FormatError(f"row {number} is not a JSON object; send one object per row")
    columns = list(dict.fromkeys(key for item in items for key in item))
    return columns, items


def _read_xlsx(raw: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        workbook = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise FormatError(f"the XLSX workbook cannot be read: {err}") from err
    try:
        sheet = workbook.worksheets[0]
        lines = sheet.iter_rows(values_only=True)
        header = [str(cell).strip() if cell is not None else "" for cell in next(lines, ())]
        rows = [
            {name: _cell(name, value) for name, value in zip(header, line, strict=False) if name}
            for line in lines
            if any(value is not None and str(value).strip() for value in line)
        ]
    finally:
        workbook.close()
    return [name for name in header if name], rows


def _cell(column: str, value: Any) -> Any:
    # Spreadsheets turn `2024-03` into a date; the loaders want the month back as text.
    if isinstance(value, datetime | date) and column.endswith("month"):
        return f"{value.year:04d}-{value.month:02d}"
    return value
