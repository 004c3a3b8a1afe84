"""A reader's measurements saved as a DICOM SR measurement report (TID 1500), and read back.

A length or a region drawn in the viewer is worth keeping only if another workstation,
the next reading or a court can see it: the standard form is an Imaging Measurement
Report (TID 1500) in a Comprehensive 3D SR, built here with highdicom, one planar ROI
group (TID 1410) per measurement: the region as image coordinates on its source image,
the value with its UCUM unit, the reader's label as the tracking identifier. The SR goes
into the study through the one ingest path, so every door serves it like any instance.

Saving again stores a new report (the earlier one stays, as the standard expects); the
latest report of the study is what the viewer reloads, so deleting a measurement is
saving the set without it. Deleting the last one cannot be said that way (a TID 1500
report holds at least one measurement): saving an empty set withdraws the study's
measurement reports by IOCM rejection (:meth:`Archive.reject`, 113001), so they leave
every door and nothing reloads.

No words are made up: TID 1410 requires a human-readable tracking identifier, and a
measurement without a label gets its number in the report ("#1"), which reads the same
in every language; it (and the English "length 1" of reports saved before) is read back
as no label, so the viewer names the measurement in the reader's own language.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from pacs.archive.ingest import Origin
from pacs.auth.principal import Principal

if TYPE_CHECKING:
    from pacs.archive import Archive
    from pacs.archive.retrieve import StoredInstance

log = logging.getLogger(__name__)

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
# What each kind of measurement is, as SNOMED CT / DCM concepts, and its UCUM unit.
KINDS: dict[str, tuple[hd.sr.CodedConcept, hd.sr.CodedConcept]] = {
    "length": (
        hd.sr.CodedConcept("410668003", "SCT", "Length"),
        hd.sr.CodedConcept("mm", "UCUM", "millimeter"),
    ),
    "area": (
        hd.sr.CodedConcept("42798000", "SCT", "Area"),
        hd.sr.CodedConcept("mm2", "UCUM", "square millimeter"),
    ),
    "mean": (
        hd.sr.CodedConcept("373098007", "SCT", "Mean Value of population"),
        hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit"),
    ),
    # pydicom's codes.SCT.Angle (CID 12304) and codes.UCUM.Degree; the vertex is the
    # middle point of a three-point POLYLINE.
    "angle": (
        hd.sr.CodedConcept("1483009", "SCT", "Angle"),
        hd.sr.CodedConcept("deg", "UCUM", "degree"),
    ),
}
# Points each kind's region takes, where the kind fixes it (an angle: two arms, one vertex).
POINTS = {"angle": 3}
# The 2D graphic types of SCOORD (PS3.3 C.18.6.1.2; a polygon is a closed POLYLINE) and the
# fewest points each takes.
GRAPHICS = {"POINT": 1, "POLYLINE": 2, "ELLIPSE": 4, "CIRCLE": 2, "MULTIPOINT": 1}
MAX_MEASUREMENTS = 200
MAX_POINTS = 1000
MAX_LABEL = 64  # the API's limit too: a longer label is refused, never cut
# The tracking identifier of an unlabelled measurement: its number, and the English
# default of the reports saved before.
UNLABELLED = re.compile(r"#[0-9]+|(length|area|mean) [0-9]+")
WITHDRAWN = "113001"  # IOCM "Rejected for Quality Reasons": the reader took them back


class MeasurementError(ValueError):
    """The measurements cannot be saved as asked (unknown image, bad geometry...).

    ``key`` names the reason in the message catalogue (``reading.measurement_<key>``),
    ``params`` fill it in: the reader sees it in their own language, never our English.
    """

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(f"{key}: {params}")
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Drawn:
    """One measurement as the viewer drew it, in the source image's pixel coordinates."""

    kind: str
    value: float
    label: str
    sop_instance_uid: str
    graphic_type: str
    points: list[tuple[float, float]]
    frame: int | None = None


def check(drawn: Drawn) -> None:
    """Refuse what cannot be a TID 1410 group (raises :class:`MeasurementError`)."""
    if drawn.kind not in KINDS:
        raise MeasurementError("unknown_kind", kind=drawn.kind, kinds=", ".join(KINDS))
    minimum = GRAPHICS.get(drawn.graphic_type)
    if minimum is None:
        raise MeasurementError(
            "bad_graphic", graphic=drawn.graphic_type, graphics=", ".join(GRAPHICS)
        )
    if not minimum <= len(drawn.points) <= MAX_POINTS:
        raise MeasurementError(
            "point_count", graphic=drawn.graphic_type, minimum=minimum, maximum=MAX_POINTS
        )
    wanted = POINTS.get(drawn.kind)
    if wanted is not None and (drawn.graphic_type, len(drawn.points)) != ("POLYLINE", wanted):
        raise MeasurementError("kind_shape", kind=drawn.kind, points=wanted)
    if len(drawn.label) > MAX_LABEL:
        raise MeasurementError("label_too_long", maximum=MAX_LABEL)
    if not np.isfinite(drawn.value) or not all(np.isfinite(p).all() for p in drawn.points):
        raise MeasurementError("not_finite")


def save(
    archive: Archive, principal: Principal, study_uid: str, drawn: list[Drawn]
) -> dict[str, Any]:
    """Store ``drawn`` as a new measurement report in ``study_uid``; its UIDs and count.
    An empty ``drawn`` withdraws the study's reports instead (see :func:`withdraw`).

    Raises :class:`MeasurementError` for an image not in the study or bad geometry.
    """
    if not drawn:
        return {"sop_instance_uid": None, "series_instance_uid": None, "count": 0,
                "withdrawn": withdraw(archive, principal, study_uid)}  # fmt: skip
    if len(drawn) > MAX_MEASUREMENTS:
        raise MeasurementError("too_many", maximum=MAX_MEASUREMENTS)
    for item in drawn:
        check(item)
    sources = _source_images(archive, study_uid, {d.sop_instance_uid for d in drawn})
    try:
        groups = [
            _group(item, sources[item.sop_instance_uid], n) for n, item in enumerate(drawn, 1)
        ]
    except ValueError as exc:  # highdicom's checks (frame numbers, points of a type...)
        log.info("measurements refused by highdicom: %s", exc)  # its words are English
        raise MeasurementError("geometry") from exc
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=principal.name[:63] + "^"  # a user name: one family-name component
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure"),
        imaging_measurements=groups,
    )
    evidence = list(sources.values())
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=9901,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="PACS",
        series_description="Measurements",
        is_complete=True,
        is_final=False,
    )
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    archive.ingest(buffer, Origin(door="api", user=principal.name), expect_study_uid=study_uid)
    return {
        "sop_instance_uid": str(sr.SOPInstanceUID),
        "series_instance_uid": str(sr.SeriesInstanceUID),
        "count": len(drawn),
        "withdrawn": [],
    }


def withdraw(archive: Archive, principal: Principal, study_uid: str) -> list[str]:
    """Reject every measurement report of ``study_uid`` (IOCM, code 113001, one rejection
    note per report series); the SOP Instance UIDs rejected, none when it had none.

    Every report goes, not only the latest: an earlier one would otherwise become the
    latest and the deleted measurements come back. The rejection is audited and
    refused under a legal hold (:class:`~pacs.archive.errors.LegalHoldActive`) by the
    archive, like any rejection."""
    by_series: dict[str, list[str]] = {}
    for instance, _ in _reports(archive, study_uid):
        by_series.setdefault(instance.series_uid, []).append(instance.sop_instance_uid)
    for series_uid, uids in by_series.items():
        archive.reject(
            principal, study_uid, code=WITHDRAWN, series_uid=series_uid,
            sop_instance_uids=uids, reason="measurements withdrawn by the reader",
        )  # fmt: skip
    return [uid for uids in by_series.values() for uid in uids]


def latest(archive: Archive, study_uid: str) -> dict[str, Any] | None:
    """The study's newest measurement report, read back as the viewer draws it; ``None``
    when it has none."""
    found: list[tuple[str, int, Dataset]] = []  # newest content, then latest stored
    for order, (_, report) in enumerate(_reports(archive, study_uid)):
        when = f"{report.get('ContentDate', '')}{report.get('ContentTime', '')}"
        found.append((when, order, report))
    if not found:
        return None
    *_, ds = max(found, key=lambda entry: entry[:2])
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "observer": _observer(ds),
        "measurements": [_drawn(group) for group in _groups(ds)],
    }


def _reports(archive: Archive, study_uid: str) -> list[tuple[StoredInstance, Dataset]]:
    """The study's measurement reports (TID 1500 in a Comprehensive 3D SR) as stored:
    (the located instance, its dataset), in the order the index gives them."""
    found = []
    for instance in archive.locate(study_uid):
        if instance.sop_class_uid != COMPREHENSIVE_3D_SR:
            continue
        with archive.open_blob(instance.blob_key) as fp:
            report: Dataset = dcmread(fp)
        if _is_measurement_report(report):
            found.append((instance, report))
    return found


def _source_images(archive: Archive, study_uid: str, uids: set[str]) -> dict[str, Dataset]:
    sources: dict[str, Dataset] = {}
    for uid in sorted(uids):
        found = archive.locate(study_uid, None, uid)
        if not found:
            raise MeasurementError("not_in_study", uid=uid)
        with archive.open_blob(found[0].blob_key) as fp:
            sources[uid] = dcmread(fp, stop_before_pixels=True)
    return sources


def _group(
    item: Drawn, source: Dataset, number: int
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    name, unit = KINDS[item.kind]
    frames = [item.frame] if item.frame else None
    region = hd.sr.ImageRegion(
        graphic_type=item.graphic_type,
        graphic_data=np.array(item.points, dtype=float),
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            source, referenced_frame_numbers=frames
        ),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=item.label or f"#{number}"
        ),
        referenced_region=region,
        measurements=[hd.sr.Measurement(name=name, value=float(item.value), unit=unit)],
    )


def _is_measurement_report(ds: Dataset) -> bool:
    concept = ds.get("ConceptNameCodeSequence")
    return bool(concept) and concept[0].CodeValue == "126000"


def _groups(ds: Dataset) -> list[Any]:
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=False)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    groups: list[Any] = report.get_planar_roi_measurement_groups()
    return groups


def _drawn(group: Any) -> dict[str, Any]:
    region = group.roi
    measurement = group.get_measurements()[0] if group.get_measurements() else None
    kind = next(
        (k for k, (name, _) in KINDS.items() if measurement and measurement.name == name), ""
    )
    image = (
        region.ContentSequence[0] if region is not None and "ContentSequence" in region else None
    )
    source = image.ReferencedSOPSequence[0] if image is not None else None
    frames = source.get("ReferencedFrameNumber") if source is not None else None
    return {
        "kind": kind,
        "value": float(measurement.value) if measurement else None,
        "unit": measurement.unit.value if measurement else "",
        "label": _label(group.tracking_identifier),
        "sop_instance_uid": str(source.ReferencedSOPInstanceUID) if source else "",
        "frame": int(frames) if frames else None,
        "graphic_type": str(region.GraphicType) if region is not None else "",
        "points": region.value.tolist() if region is not None else [],
    }


def _label(identifier: str | None) -> str:
    """The reader's label; empty for the identifier of an unlabelled measurement."""
    text = str(identifier or "")
    return "" if UNLABELLED.fullmatch(text) else text


def _observer(ds: Dataset) -> str:
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "PNAME":
            return str(item.PersonName).rstrip("^")
    return ""
