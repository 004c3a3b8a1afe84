"""Reading: the radiologists' worklist, claims on studies, and priors (issue 17 item 3)."""

from pacs.reading.worklist import (
    STATUSES,
    ClaimConflict,
    NotClaimed,
    ReadingWorklist,
    WorklistFilter,
)

__all__ = ["STATUSES", "ClaimConflict", "NotClaimed", "ReadingWorklist", "WorklistFilter"]
