"""Statistics and KPIs of the archive (issue 20 item 1): a domain beside workflow and jobs.

Doors ask :class:`Statistics` (``archive.stats``) for a :class:`StatsQuery` and
render the :class:`StatsResult` as JSON, CSV or XLSX (:mod:`pacs.stats.export`).
"""

from pacs.stats.periods import Period
from pacs.stats.service import (
    COLUMNS,
    GroupBy,
    Report,
    Statistics,
    StatsError,
    StatsQuery,
    StatsResult,
)

__all__ = [
    "COLUMNS",
    "GroupBy",
    "Period",
    "Report",
    "Statistics",
    "StatsError",
    "StatsQuery",
    "StatsResult",
]
