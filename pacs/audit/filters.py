"""What an audit reader asks for: who, which patient or study, which action, when.

The HTTP API and ``pacs audit list`` take the same filters; dates are read
here once, so ``--until 2026-12-04`` means the same through both: up to the
end of that day (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True)
class AuditFilter:
    user: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    action: str | None = None  # "share" also matches share-create, share-open...
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def parse_when(text: str | None, *, end: bool = False) -> datetime | None:
    """An ISO date or date-time (UTC unless it says otherwise); a date as ``end`` is the next day.

    Raises ``ValueError`` with a reason a person can act on.
    """
    if not text:
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
