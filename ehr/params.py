"""FHIR search parameter values (R4 3.1.1.4: date, token, reference) in DICOM matching terms.

Each function takes the text a client sent and returns what the archive's
engine matches on, or raises :class:`FhirError` (400) saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from fastapi import status

from ehr.outcome import FhirError

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})"
    r"(T[0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)


def bad(diagnostics: str) -> FhirError:
    return FhirError(status.HTTP_400_BAD_REQUEST, "invalid", diagnostics)


def _interval(text: str) -> tuple[date, date]:
    """The first and last day a FHIR date (year, month, day; a time is cut to its day) covers."""
    match = _DATE.match(text)
    if not match:
        raise bad(f"not a FHIR date: {text[:64]!r}")
    try:
        year = int(match["y"])
        if match["d"]:
            day = date(year, int(match["m"]), int(match["d"]))
            return day, day
        if match["m"]:
            month = int(match["m"])
            first = date(year, month, 1)
            following = date(year + month // 12, month % 12 + 1, 1)
            return first, following - timedelta(days=1)
        return date(year, 1, 1), date(year, 12, 31)
    except ValueError as exc:
        raise bad(f"not a calendar date: {text[:64]!r}") from exc


@dataclass
class DateRange:
    """An inclusive range of days; None at an end means open. Several parameters intersect."""

    low: date | None = None
    high: date | None = None

    def narrow(self, value: str) -> None:
        prefix, text = (value[:2], value[2:]) if value[:2] in PREFIXES else ("eq", value)
        first, last = _interval(text)
        match prefix:
            case "eq":
                lows, highs = [first], [last]
            case "ge":
                lows, highs = [first], []
            case "gt" | "sa":
                lows, highs = [last + timedelta(days=1)], []
            case "le":
                lows, highs = [], [last]
            case "lt" | "eb":
                lows, highs = [], [first - timedelta(days=1)]
            case _:
                raise bad(f"the date prefix {prefix!r} is not supported (eq ge gt le lt sa eb)")
        if lows:
            self.low = max(lows[0], self.low) if self.low else lows[0]
        if highs:
            self.high = min(highs[0], self.high) if self.high else highs[0]

    @property
    def empty(self) -> bool:
        return self.low is not None and self.high is not None and self.low > self.high

    def dicom(self) -> str:
        """The DICOM DA range (PS3.4 C.2.2.2.5), e.g. ``20250101-20251231`` or ``20250101-``."""
        low = self.low.strftime("%Y%m%d") if self.low else ""
        high = self.high.strftime("%Y%m%d") if self.high else ""
        return low if low and low == high else f"{low}-{high}"


def token(value: str) -> tuple[str | None, str]:
    """``system|code`` as (system, code); ``|code`` as ("", code); ``code`` as (None, code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value


def split_or(value: str) -> list[str]:
    """The comma-separated alternatives of one parameter (a ``\\,`` is a literal comma)."""
    parts = re.split(r"(?<!\\),", value)
    return [p.replace("\\,", ",") for p in parts if p]
