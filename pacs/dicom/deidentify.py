"""De-identification following PS3.15 Annex E's Basic Application Confidentiality Profile.

The per-attribute actions (D, Z, X, U and their combinations) are the
``dicom-anonymizer`` package's tables, generated from the standard's Table
E.1-1 (its 2024b edition). On top of them:

* a consistent pseudonym per patient: PatientID and PatientName become
  ``ANON-`` and the first 16 hex digits of an HMAC-SHA256 of the issuer and ID
  keyed with the server's secret, so every export of one patient (today or
  next year, de-identified alone or with others) names it the same, and nobody
  without the secret can go back;
* UIDs replaced deterministically (``2.25.`` UIDs from an HMAC of the
  original), so the study/series/instance structure, references between
  objects, and repeated exports all agree, unlike the package's per-process
  random mapping;
* the options: Retain Longitudinal Temporal Information with Full Dates
  (dates and times kept) and Retain Device Identity (station, serial numbers,
  device UIDs kept), recorded in DeidentificationMethodCodeSequence with
  PatientIdentityRemoved=YES (PS3.15 E.1.1).

Burned-in annotations are not cleaned (the Clean Pixel Data option is not
offered); private attributes are removed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dicomanonymizer.simpledicomanonymizer import (
    anonymize_dataset,
    initialize_actions_2024b,
    keep,
)
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

# Table E.1-1's "Rtn. Dev. Id. Opt." column: attributes kept with the Retain Device Identity option.
DEVICE_IDENTITY = (
    (0x0008, 0x1010),  # Station Name
    (0x0018, 0x1000),  # Device Serial Number
    (0x0018, 0x1002),  # Device UID
    (0x0018, 0x1004),  # Plate ID
    (0x0018, 0x1005),  # Generator ID
    (0x0018, 0x1007),  # Cassette ID
    (0x0018, 0x1008),  # Gantry ID
    (0x0018, 0x700A),  # Detector ID
    (0x0018, 0x9371),  # X-Ray Detector ID
    (0x0018, 0x9373),  # X-Ray Source ID
    (0x0018, 0x9367),  # X-Ray Source ID (legacy)
    (0x0040, 0x0241),  # Performed Station AE Title
    (0x0040, 0x0242),  # Performed Station Name
    (0x0040, 0x0001),  # Scheduled Station AE Title
    (0x0040, 0x0010),  # Scheduled Station Name
    (0x0050, 0x0020),  # Device Description
    (0x3010, 0x002D),  # Device Label
    (0x3010, 0x0043),  # Manufacturer's Device Identifier
    (0x0018, 0x1030),  # Protocol Name (device-borne)
)
METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "retain_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_device": ("113109", "Retain Device Identity Option"),
}


@dataclass(frozen=True)
class DeidOptions:
    """Which Annex E options to apply on top of the Basic Profile."""

    retain_dates: bool = False
    retain_device: bool = False


def pseudonym(secret: str, patient_id: str, issuer: str = "") -> str:
    """The patient's pseudonym: stable for one secret, unguessable without it."""
    digest = hmac.new(secret.encode(), f"{issuer}\0{patient_id}".encode(), hashlib.sha256)
    return "ANON-" + digest.hexdigest()[:16].upper()


def pseudonymous_uid(secret: str, uid: str) -> str:
    """A ``2.25.`` UID derived from ``uid`` (PS3.5 B.2): the same original, the same new UID."""
    digest = hmac.new(secret.encode(), b"uid\0" + uid.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _uid_action(secret: str) -> Callable[[Dataset, Any], None]:
    def replace(dataset: Dataset, tag: Any) -> None:
        element = dataset.get(tag)
        if element is None or not element.value:
            return
        if element.VM > 1:
            element.value = [pseudonymous_uid(secret, str(v)) for v in element.value]
        else:
            element.value = pseudonymous_uid(secret, str(element.value))

    return replace


def _rules(secret: str, options: DeidOptions) -> dict[Any, Callable[..., Any]]:
    base = initialize_actions_2024b()
    rules: dict[Any, Callable[..., Any]] = {}
    uid = _uid_action(secret)
    for tag in base:
        if len(tag) == 2 and dictionary_VR_or_none(tag) == "UI" and tag[0] != 0x0002:
            rules[tag] = uid  # every UID the profile replaces or may replace
    if options.retain_dates:
        for tag in base:
            if len(tag) == 2 and dictionary_VR_or_none(tag) in ("DA", "DT", "TM"):
                rules[tag] = keep
        rules.pop((0x0010, 0x0030), None)  # the birth date identifies: Z even with the option
        rules.pop((0x0010, 0x0032), None)  # birth time
    if options.retain_device:
        for tag in DEVICE_IDENTITY:
            rules[tag] = keep
    return rules


def dictionary_VR_or_none(tag: tuple[int, int]) -> str | None:
    try:
        return str(dictionary_VR((tag[0] << 16) | tag[1]))
    except KeyError:
        return None


def deidentify(ds: Dataset, secret: str, options: DeidOptions = DeidOptions()) -> str:
    """De-identify ``ds`` in place (the file meta follows); the patient's pseudonym."""
    alias = pseudonym(
        secret, str(ds.get("PatientID", "") or ""), str(ds.get("IssuerOfPatientID", "") or "")
    )
    anonymize_dataset(
        ds,
        _rules(secret, options),
        delete_private_tags=True,
        base_rules_gen=initialize_actions_2024b,
    )
    ds.PatientID = alias
    ds.PatientName = alias
    ds.PatientIdentityRemoved = "YES"
    used = ["basic"] + [
        name for name in ("retain_dates", "retain_device") if getattr(options, name)
    ]
    ds.DeidentificationMethod = "PS3.15 E.1 Basic" + "".join(
        {"retain_dates": ", full dates", "retain_device": ", device identity"}[name]
        for name in used[1:]
    )
    codes = []
    for name in used:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = METHOD_CODES[name]
        item.CodingSchemeDesignator = "DCM"
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return alias
