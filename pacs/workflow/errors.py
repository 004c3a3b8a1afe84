"""Workflow refusals, typed like the archive's (pacs.archive.errors) and naming the HIS field.

``field`` is where the HIS should look (an HL7 location such as ``ORC-1``), so
that the HL7 door can put it in the ERR segment without matching on text.
"""

from __future__ import annotations

from pacs.archive.errors import Conflict, InvalidRequest, NotFound


class UnknownOrder(NotFound):
    """A change, cancel or discontinue names an order we never received."""

    field = "OBR-18"


class OrderConflict(Conflict):
    """The accession number already names another patient's order, or the order is closed."""

    field = "OBR-18"


class BadOrder(InvalidRequest):
    """The order's content is not usable (no accession number, unknown patient)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field
