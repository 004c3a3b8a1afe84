"""A DICOM SR document as a plain tree the viewer shows as text (issue 17 item 4).

A structured report (a signed report's Basic Text SR, a measurement report, a modality's
dose report) is a tree of content items; a reader wants to read it, not decode it. Each
item becomes ``{"name", "type", "relationship", "value", "children"}`` with the value
already as text: a code's meaning, a number with its UCUM unit, a person's name, the image
it refers to, a region's graphic type and points. The tree is bounded (depth and items), so
a hostile document cannot make an unbounded answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset

if TYPE_CHECKING:
    from pacs.archive import Archive

SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."

MAX_DEPTH = 32
MAX_ITEMS = 5000
MAX_POINTS_SHOWN = 16


class TooLarge(ValueError):
    """The document has more content items than :data:`MAX_ITEMS`."""


def _meaning(item: Dataset, keyword: str) -> str:
    sequence = item.get(keyword)
    if not sequence:
        return ""
    code = sequence[0]
    return str(code.get("CodeMeaning", "") or code.get("CodeValue", ""))


def _number(item: Dataset) -> str:
    measured = item.get("MeasuredValueSequence")
    if not measured:
        return ""
    value = measured[0]
    unit = value.get("MeasurementUnitsCodeSequence")
    unit_text = str(unit[0].get("CodeValue", "")) if unit else ""
    if unit_text == "1":  # UCUM's "no unit"
        unit_text = ""
    return f"{value.get('NumericValue', '')} {unit_text}".strip()


def _image(item: Dataset) -> str:
    refs = item.get("ReferencedSOPSequence")
    if not refs:
        return ""
    ref = refs[0]
    frames = ref.get("ReferencedFrameNumber")
    text = str(ref.get("ReferencedSOPInstanceUID", ""))
    return f"{text} [{frames}]" if frames else text


def _coordinates(item: Dataset) -> str:
    data = [float(v) for v in (item.get("GraphicData") or [])]
    pairs = [
        f"({data[i]:g}, {data[i + 1]:g})"
        for i in range(0, min(len(data) - 1, 2 * MAX_POINTS_SHOWN), 2)
    ]
    more = " …" if len(data) > 2 * MAX_POINTS_SHOWN else ""
    return f"{item.get('GraphicType', '')} {' '.join(pairs)}{more}".strip()


def value_text(item: Dataset) -> str:
    """The item's value as text (empty for a container)."""
    kind = str(item.get("ValueType", ""))
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if kind == "NUM":
        return _number(item)
    if kind == "PNAME":
        return str(item.get("PersonName", "")).replace("^", " ").strip()
    if kind in ("DATE", "TIME", "DATETIME", "UIDREF"):
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "UIDREF": "UID"}[kind]
        return str(item.get(keyword, ""))
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return _image(item)
    if kind in ("SCOORD", "SCOORD3D"):
        return _coordinates(item)
    return ""


def _node(item: Dataset, depth: int, budget: list[int]) -> dict[str, Any]:
    budget[0] -= 1
    if budget[0] < 0:
        raise TooLarge(f"more than {MAX_ITEMS} content items")
    children = item.get("ContentSequence") or [] if depth < MAX_DEPTH else []
    return {
        "name": _meaning(item, "ConceptNameCodeSequence"),
        "type": str(item.get("ValueType", "")),
        "relationship": str(item.get("RelationshipType", "")),
        "value": value_text(item),
        "children": [_node(child, depth + 1, budget) for child in children],
    }


def document_tree(ds: Dataset) -> dict[str, Any]:
    """The SR ``ds`` as a header and its content tree (raises :class:`TooLarge`)."""
    return {
        "title": _meaning(ds, "ConceptNameCodeSequence"),
        "series_description": str(ds.get("SeriesDescription", "")),
        "content_date": str(ds.get("ContentDate", "")),
        "content_time": str(ds.get("ContentTime", "")),
        "completion": str(ds.get("CompletionFlag", "")),
        "verification": str(ds.get("VerificationFlag", "")),
        "tree": _node(ds, 0, [MAX_ITEMS]),
    }


def document(archive: Archive, study_uid: str, sop_instance_uid: str) -> dict[str, Any] | None:
    """The SR instance of the study as :func:`document_tree`; ``None`` when the study has no
    SR of that UID (raises :class:`TooLarge`)."""
    found = [
        i
        for i in archive.locate(study_uid, None, sop_instance_uid)
        if i.sop_class_uid.startswith(SR_CLASS_PREFIX)
    ]
    if not found:
        return None
    with archive.open_blob(found[0].blob_key) as fp:
        ds = dcmread(fp, stop_before_pixels=True)
    return document_tree(ds)
