"""Search matches in a neutral form, rendered on demand as datasets (C-FIND) or DICOM JSON (QIDO).

Building a pydicom ``Dataset`` per match and then converting it to JSON cost
QIDO about half a millisecond per match; a study list of 101 rows spent most
of its time there. Matches are therefore kept as ``tag -> (VR, value)`` and
each door renders only the form it sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from pydicom.dataset import Dataset

STORED_JSON = "json"  # value is an element exactly as stored in the instance's DICOM JSON
Values = dict[int, tuple[str, Any]]

_INTEGER_VRS = {"IS", "US", "UL", "SS", "SL", "UV", "SV"}
_FLOAT_VRS = {"DS", "FL", "FD"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _json_value(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    items = value if isinstance(value, list) else [value]
    if vr == "PN":
        names = []
        for item in items:
            groups = str(item).split("=")
            names.append(
                {name: group for name, group in zip(_PN_GROUPS, groups, strict=False) if group}
            )
        return {"vr": vr, "Value": names}
    if vr in _INTEGER_VRS:
        return {"vr": vr, "Value": [int(v) for v in items]}
    if vr in _FLOAT_VRS:
        return {"vr": vr, "Value": [float(v) for v in items]}
    return {"vr": vr, "Value": [str(v) for v in items]}


def _set(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    if vr == STORED_JSON:
        ds[tag] = Dataset.from_json({f"{tag:08X}": value})[tag]
        return
    if value is None or value == "":
        value = None if vr in _INTEGER_VRS - {"IS"} or vr in _FLOAT_VRS - {"DS"} else ""
    elif vr == "IS":
        value = [str(v) for v in value] if isinstance(value, list) else str(value)
    ds.add_new(tag, vr, value)


class SearchResult:
    """The matches of one search, whether ``limit`` cut them, and the keys left unmatched."""

    def __init__(
        self,
        rows: list[Values],
        truncated: bool,
        ignored: list[str] | None = None,
        total: int | None = None,
    ) -> None:
        self.rows = rows
        self.truncated = truncated
        self.ignored = ignored or []  # why each key that could not be matched was ignored
        self.total = total  # every match, ignoring limit and offset (when counted)

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def matches(self) -> list[Dataset]:
        """Each match as a dataset."""
        return list(self.datasets())

    def patient_ids(self) -> set[str]:
        """The Patient IDs among the matches (where the level returns them), for the audit."""
        found = set()
        for row in self.rows:
            value = row.get(0x00100020, ("", None))[1]
            if isinstance(value, str) and value:
                found.add(value)
        return found

    def datasets(self) -> Iterator[Dataset]:
        """The matches as datasets, one at a time (C-FIND streams them as they are built)."""
        for row in self.rows:
            ds = Dataset()
            for tag in sorted(row):
                vr, value = row[tag]
                _set(ds, tag, vr, value)
            yield ds

    def json(self) -> list[dict[str, dict[str, Any]]]:
        """Each match as DICOM JSON (PS3.18 F.2), without building datasets."""
        rendered = []
        for row in self.rows:
            item = {}
            for tag in sorted(row):
                vr, value = row[tag]
                item[f"{tag:08X}"] = value if vr == STORED_JSON else _json_value(vr, value)
            rendered.append(item)
        return rendered
