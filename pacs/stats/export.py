"""A statistics report as CSV or XLSX, with headers in the reader's language.

Spreadsheets are what the provincial health department receives: the first
sheet row says which report and range, then one header row and the data. Cell
values are numbers or the group labels from the index; a label that starts
like a formula is written as text (openpyxl writes strings as strings, and the
CSV prefixes them with a quote) so that a crafted name cannot run in Excel.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

from pacs.i18n import translate
from pacs.stats.service import StatsResult

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _headers(result: StatsResult, lang: str) -> list[str]:
    return [translate(f"stats.col_{name}", lang) for name in result.columns]


def _cell(name: str, value: Any, lang: str) -> Any:
    if name == "measure":
        return translate(f"stats.measure_{value}", lang)
    return value


def _title(result: StatsResult, lang: str) -> list[str]:
    q = result.query
    return [
        translate(f"stats.report_{q.report}", lang),
        f"{translate('stats.range', lang)}: {q.start.isoformat()} - {q.end.isoformat()}",
    ]


def _safe_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(result: StatsResult, lang: str) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel shows Vietnamese names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_headers(result, lang))
    for row in result.rows:
        writer.writerow(_safe_text(_cell(n, row[n], lang)) for n in result.columns)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(result: StatsResult, lang: str) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(translate("stats.sheet", lang))
    sheet.append(_title(result, lang))
    sheet.append(_headers(result, lang))
    for row in result.rows:
        sheet.append([_cell(n, row[n], lang) for n in result.columns])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
