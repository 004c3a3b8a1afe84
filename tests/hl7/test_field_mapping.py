"""The site's HL7 field mapping: each order value read where the HIS puts it, over MLLP."""

from __future__ import annotations

import hl7
import pytest
from hl7.client import MLLPClient

from hl7v2.fields import FieldMapping, FieldMappingError, accessor
from hl7v2.listener import listener_for
from pacs.archive import Archive
from tests.hl7.messages import listening, msh


def _local_his_order(control: str) -> str:
    """An order from a HIS that puts the accession in OBR-3, the modality in a Z segment,
    the time in OBR-7, and lists its own ID (type PI) after an insurance number (type HC)."""
    obr = ["OBR", "1", "P7", "ACC-Z7", "XQ-NGUC^X-quang ngực thẳng", "", "", "202612051415"]
    return "\r".join(
        [
            msh("ORM^O01^ORM_O01", control),
            "PID|1||HC99^^^BHXH^HC~BN777^^^BVDK^PI~001099000111^^^BCA^NI||Lê^Thị Ánh||19900101|F",
            "ORC|NW|P7|F7|||||||||BS02^Phạm^Minh",
            "|".join(obr),
            "ZDS|DX",
        ]
    )


def _code(reply: bytes) -> hl7.Message:
    return hl7.parse(reply.strip(b"\x0b\x1c\r").decode())


def test_configured_locations_read_over_mllp(sqlite_archive: Archive) -> None:
    fields = FieldMapping.configured(
        {
            "accession_number": ["OBR-3"],
            "modality": ["ZDS-1", "OBR-24"],
            "scheduled_time": ["OBR-7"],
        },
        patient_id_type="PI",
    )
    with (
        listening(sqlite_archive, fields=fields) as listener,
        MLLPClient("127.0.0.1", listener.port) as client,
    ):
        ack = _code(client.send_message(_local_his_order("Z1")))
    assert str(ack["MSA.F1"]) == "AA", str(ack)
    order = sqlite_archive.workflow.order("ACC-Z7")
    assert order is not None
    assert order.modality == "DX"
    assert order.scheduled_date == "20261205"
    assert order.patient["patient_id"] == "BN777"
    assert order.patient["citizen_id"] == "001099000111"
    assert order.patient["name"] == "Lê^Thị Ánh"
    assert order.referring_physician == "Phạm^Minh"


def test_defaults_refuse_that_order_naming_the_configured_field(sqlite_archive: Archive) -> None:
    """With the defaults the same message has no OBR-18: AE naming OBR-18 (the first default)."""
    message = _local_his_order("Z2").replace("|ACC-Z7|", "||").replace("|F7|", "||")
    with listening(sqlite_archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        ack = _code(client.send_message(message))
    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack.segment("ERR")(2)) == "OBR^1^18"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"accession": ["OBR-18"]}, "unknown HL7 mapping target"),
        ({"modality": ["OBR24"]}, "is not an HL7 location"),
        ({"modality": ["../etc"]}, "is not an HL7 location"),
        ({"modality": []}, "names no location"),
    ],
)
def test_malformed_mapping_refused(overrides: dict[str, list[str]], reason: str) -> None:
    with pytest.raises(FieldMappingError, match=reason):
        FieldMapping.configured(overrides)


def test_settings_mapping_checked_when_the_door_is_built(sqlite_archive: Archive) -> None:
    sqlite_archive.settings.hl7_fields = {"modality": ["nonsense"]}
    with pytest.raises(FieldMappingError):
        listener_for(sqlite_archive)


def test_locations_translate_to_python_hl7_accessors() -> None:
    assert accessor("OBR-18") == "OBR.F18.R1.C1"
    assert accessor("orc-7.4") == "ORC.F7.R1.C4"
    assert accessor("PID-3.4.1") == "PID.F3.R1.C4.S1"
