"""HL7 v2 test messages as a HIS would send them, and a listener around an archive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hl7v2.listener import Listener
from hl7v2.receiver import Receiver
from pacs.archive import Archive

SB, EB = b"\x0b", b"\x1c\x0d"


def msh(kind: str, control: str, charset: str = "UNICODE UTF-8", app: str = "HIS") -> str:
    return (
        f"MSH|^~\\&|{app}|BVDK|PACS|BVDK|20261204100000||{kind}|{control}|P|2.5|||||VNM|{charset}"
    )


def pid(
    patient_id: str = "BN123",
    name: str = "Nguyễn^Thị Bích",
    citizen: str = "079180001234",
    sex: str = "F",
) -> str:
    return f"PID|1||{patient_id}^^^BVDK^MR~{citizen}^^^BCA^NI||{name}||19800102|{sex}"


def adt(event: str, control: str, **kwargs: str) -> str:
    charset = kwargs.pop("charset", "UNICODE UTF-8")
    return "\r".join([msh(f"ADT^{event}^ADT_A01", control, charset), pid(**kwargs), "PV1|1|O"])


def orm(
    control: str,
    order_control: str = "NW",
    accession: str = "ACC1001",
    modality: str = "CT",
    when: str = "202612041030",
    patient_id: str = "BN123",
    name: str = "Nguyễn^Thị Bích",
    kind: str = "ORM^O01^ORM_O01",
) -> str:
    # OBR-1..4, empty 5..17, OBR-18 accession, empty 19..23, OBR-24 modality
    obr = ["OBR", "1", "P100", "F100", "CT-HEAD^CT sọ não không cản quang", *[""] * 13]
    obr += [accession, *[""] * 5, modality]
    return "\r".join(
        [
            msh(kind, control),
            pid(patient_id=patient_id, name=name),
            f"ORC|{order_control}|P100|F100||||^^^{when}^^S|||||BS01^Trần^Văn Hùng",
            "|".join(obr),
        ]
    )


@contextmanager
def listening(archive: Archive, **options: object) -> Iterator[Listener]:
    """A started MLLP listener on a free loopback port, stopped at the end."""
    max_bytes = int(options.pop("max_bytes", 1 << 20))  # type: ignore[call-overload]
    receiver = Receiver(archive, **options)  # type: ignore[arg-type]
    listener = Listener(receiver, "127.0.0.1", 0, max_bytes=max_bytes)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()
