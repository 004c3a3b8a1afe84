"""The DICOM JSON kept for each instance: bulk data as URIs, repeated elements encoded once.

The index keeps each instance's attributes as DICOM JSON (PS3.18 F.2), served
as WADO-RS metadata without opening a blob. pydicom builds it, element by
element; for a CT slice that was the largest part of parsing it (about 0.5 ms
of 33 elements), though a series repeats most of them unchanged from slice to
slice: patient, study, equipment, geometry but the position.

:class:`JsonMemo` remembers the JSON of small, unambiguous elements by their
encoded bytes, so a repeated element is neither decoded nor re-encoded. The
key holds everything pydicom's conversion reads for such an element (tag, VR,
bytes, byte order, the dataset's character set); elements whose meaning
depends on others (private tags, whose VR follows their creator; "US or SS"
and other ambiguous VRs; sequences) always go through pydicom. A test compares
memoised output with pydicom's own on pydicom's test files.
"""

from __future__ import annotations

import json
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

BULK_DATA_THRESHOLD = 1024
MEMO_VALUE_LIMIT = 256  # bytes: UIDs, names, dates, geometry; not LUTs or overlays
MEMO_ENTRIES = 8192

_MemoKey = tuple[int, str, bytes, bool, tuple[str, ...]]


class JsonMemo:
    """The DICOM JSON of recently seen elements, by what determines it."""

    def __init__(self, entries: int = MEMO_ENTRIES) -> None:
        self.entries = entries
        self._known: dict[_MemoKey, dict[str, Any]] = {}

    def get(self, key: _MemoKey) -> dict[str, Any] | None:
        return self._known.get(key)

    def put(self, key: _MemoKey, value: dict[str, Any]) -> None:
        if len(self._known) >= self.entries:
            self._known.clear()  # a new series replaces the old one's elements soon enough
        self._known[key] = value


_MEMO = JsonMemo()


def to_json(
    ds: Dataset,
    drop_charset: bool = False,
    memo: JsonMemo | None = _MEMO,
    defects: list[str] | None = None,
) -> str:
    """``ds`` as compact DICOM JSON; ``drop_charset`` leaves out a character set we added.

    With ``defects`` given, an element whose value cannot be decoded (an IS of
    "1A", a date that is not one) is kept with its VR but without a value, and
    the reason is appended there; without it such an element raises.
    """
    data = json_dict(ds, "", memo, defects)
    if drop_charset:
        data.pop("00080005", None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_dict(
    ds: Dataset, path: str, memo: JsonMemo | None = None, defects: list[str] | None = None
) -> dict[str, Any]:
    """DICOM JSON with large binary values replaced by BulkDataURIs that name their place.

    A value inside a sequence gets ``bulkdata/<sequence>/<item>/<tag>`` (an icon's
    Pixel Data is not the image's), which WADO-RS resolves by walking the same path.
    The memo serves top-level elements only: a URI in an item depends on its path.
    """

    def bulk(element: DataElement) -> str:
        return f"bulkdata/{path}{element.tag:08X}"

    charset = _charset(ds) if memo is not None and not path else None
    data: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        name = f"{tag:08X}"
        key = _memo_key(ds.get_item(tag), charset) if charset is not None else None
        if key is not None and memo is not None and (known := memo.get(key)) is not None:
            data[name] = known
            continue
        try:
            element = ds[tag]
            if element.VR == "SQ":
                items = [
                    json_dict(item, f"{path}{name}/{i}/", None, defects)
                    for i, item in enumerate(element.value)
                ]
                data[name] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            else:
                data[name] = element.to_json_dict(bulk, BULK_DATA_THRESHOLD)
                if key is not None and memo is not None:
                    memo.put(key, data[name])
        # IndexError: pydicom's PN writer on an empty value among several ("A\\").
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError) as exc:
            if defects is None:
                raise
            raw = ds.get_item(tag)
            vr = str(getattr(raw, "VR", None) or "UN")
            data[name] = {"vr": vr}
            shown = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
            defects.append(f"{path}{shown} {vr} value not valid ({exc}); indexed without it")
    return data


def _charset(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("SpecificCharacterSet")
    if isinstance(value, MultiValue):
        return tuple(str(v) for v in value)
    return (str(value),) if value else ()


def _memo_key(raw: Any, charset: tuple[str, ...]) -> _MemoKey | None:
    """What determines an element's JSON, or ``None`` if more than the element does."""
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    if raw.tag.is_private or len(raw.value) > MEMO_VALUE_LIMIT or raw.length == 0xFFFFFFFF:
        return None
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, if it has one answer
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            return None
    if " or " in vr or vr in ("SQ", "UN"):
        return None
    return (int(raw.tag), vr, raw.value, raw.is_little_endian, charset)
