"""Bad objects over the network: a clear failure status, the server stays up, no stray files."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from pacs.archive import Archive
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from tests.dicom_factory import ct_slice, to_bytes, write
from tests.dimse.peers import dataset_bytes, files_below, send_files, storescu

Craft = Callable[[], bytes]


def _with(**changes: object) -> Craft:
    """A slice with attributes set (None deletes); the file meta keeps a valid instance UID."""

    def craft() -> bytes:
        ds = ct_slice()
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        return to_bytes(ds)

    return craft


def _instance_uid(uid: str) -> Craft:
    """The same bad SOP Instance UID in the C-STORE command and in the dataset."""

    def craft() -> bytes:
        ds = ct_slice()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
        return to_bytes(ds)

    return craft


def _patched(find: bytes, offset: int, new: bytes) -> Craft:
    """A slice whose bytes at ``offset`` after the first ``find`` are overwritten."""

    def craft() -> bytes:
        data = bytearray(to_bytes(ct_slice()))
        at = data.index(find) + offset
        data[at : at + len(new)] = new
        return bytes(data)

    return craft


def _cut(keep: Callable[[bytes], int]) -> Craft:
    def craft() -> bytes:
        data = to_bytes(ct_slice())
        return data[: keep(data)]

    return craft


def _body_replaced(body: bytes) -> Craft:
    def craft() -> bytes:
        data = to_bytes(ct_slice())
        return data[: data.index(b"\x08\x00\x05\x00CS")] + body  # meta kept, dataset replaced

    return craft


def _deflated(mutate: Callable[[bytearray], bytes]) -> Craft:
    """A deflated slice whose inflated dataset is ``mutate``d before deflating it again."""

    def craft() -> bytes:
        ds = ct_slice()
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        data = to_bytes(ds)
        meta_end = len(data) - len(dataset_bytes(data))
        plain = zlib.decompress(data[meta_end:], -zlib.MAX_WBITS)
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflater.compress(mutate(bytearray(plain))) + deflater.flush()
        return data[:meta_end] + body

    return craft


def _absurd_pixel_length(plain: bytearray) -> bytes:
    at = plain.index(PIXEL_DATA) + 8
    plain[at : at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    return bytes(plain)


PIXEL_DATA = b"\xe0\x7f\x10\x00OW"
PATIENT_ID = b"\x10\x00\x20\x00LO"

BAD_OBJECTS: dict[str, Craft] = {
    "truncated in pixel data": _cut(lambda data: len(data) - 100),
    "truncated in an element header": _cut(lambda data: data.index(PATIENT_ID) + 5),
    "truncated in a value": _cut(lambda data: data.index(PATIENT_ID) + 9),
    "value length too long": _patched(PATIENT_ID, 6, (0x6000).to_bytes(2, "little")),
    "value length off by two": _patched(PATIENT_ID, 6, (8).to_bytes(2, "little")),
    "absurd pixel data length": _patched(PIXEL_DATA, 8, (0xFFFFFFF0).to_bytes(4, "little")),
    "deflated, truncated inside": _deflated(lambda plain: bytes(plain[:-500])),
    "deflated, absurd pixel data length": _deflated(_absurd_pixel_length),
    "deflated, stream cut short": lambda: _deflated(bytes)()[:-40],
    "garbage after the meta header": _body_replaced(b"\x01\x02garbage" * 50),
    "missing SOPInstanceUID": _with(SOPInstanceUID=None),
    "missing StudyInstanceUID": _with(StudyInstanceUID=None),
    "missing SeriesInstanceUID": _with(SeriesInstanceUID=None),
    "missing SOPClassUID": _with(SOPClassUID=None),
    "letters in a UID": _with(StudyInstanceUID="1.2.840.abc"),
    "empty UID component": _with(SeriesInstanceUID="1.2..3"),
    "UID over 64 characters": _with(StudyInstanceUID="1." + "2" * 70),
    "../ in the study UID": _with(StudyInstanceUID="../../../../tmp/escaped"),
    "/ in the series UID": _with(SeriesInstanceUID="1.2/3"),
    "backslash in the study UID": _with(StudyInstanceUID="1.2\\..\\..\\3"),
    "NUL in the series UID": _with(SeriesInstanceUID="1.2\x00.3"),
    "absolute path as study UID": _with(StudyInstanceUID="/etc/passwd"),
    "../ in the command's instance UID": _instance_uid("../../../../tmp/escaped"),
    "/ in the command's instance UID": _instance_uid("1.2/3"),
    "NUL in the command's instance UID": _instance_uid("1.2\x00.3"),
}


def _failure(code: int) -> bool:
    return code >> 8 in (0xA9, 0xC0)  # "Data Set does not match SOP Class" / "Cannot understand"


def _good_store_works(port: int, folder: Path) -> None:
    good = write(ct_slice(), folder / "good.dcm")
    assert send_files(port, [good]) == [(st.SUCCESS, "")]


def _new_files_outside(store_root: Path, before: set[Path], root: Path) -> set[Path]:
    """Files created since ``before`` that are neither blobs nor the archive's own books.

    The books are the SQLite index and the audit trail's signed checkpoint (and its
    lock): refusals are audited, so the checkpoint appears with the first refusal.
    """
    return {
        path
        for path in files_below(root) - before
        if store_root not in path.parents and not path.name.startswith(("index.sqlite", "audit-"))
    }


def _problems(name: str, code: int, comment: str, archive: Archive) -> list[str]:
    problems = []
    if not _failure(code):
        problems.append(f"{name}: status {code:#06x} {comment!r}")
    if not comment:
        problems.append(f"{name}: no ErrorComment")
    if archive.counts()["instances"] or list(archive.store.list()):
        problems.append(f"{name}: something was stored")
    return problems


def test_bad_objects_get_a_failure_status_and_leave_nothing(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """Every bad object on its own association; one loop keeps the suite fast."""
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    paths = {name: crafted / f"{n}.dcm" for n, name in enumerate(BAD_OBJECTS)}
    for name, path in paths.items():
        path.write_bytes(BAD_OBJECTS[name]())
    store_root = Path(archive.store.root)  # type: ignore[attr-defined]
    before = files_below(tmp_path)

    problems = []
    for name, path in paths.items():
        [(code, comment)] = send_files(dimse_server.port, [path])
        problems += _problems(name, code, comment, archive)
    assert problems == []

    _good_store_works(dimse_server.port, crafted)
    assert _new_files_outside(store_root, before, tmp_path) == {crafted / "good.dcm"}
    assert len(list(archive.store.list())) == 1


def test_instance_uid_differing_from_the_request_is_refused(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    ds = ct_slice()
    uid = str(ds.SOPInstanceUID)
    announced = uid[:-1] + ("1" if uid[-1] != "1" else "2")
    data = to_bytes(ds).replace(uid.encode(), announced.encode(), 1)  # the meta's, sent as command
    crafted = tmp_path / "mismatch.dcm"
    crafted.write_bytes(data)
    [(code, comment)] = send_files(dimse_server.port, [crafted])
    assert code == st.DATASET_DOES_NOT_MATCH and "SOPInstanceUID" in comment
    assert archive.counts()["instances"] == 0


def test_storescu_on_crafted_files(
    dcmtk: None, archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    """What DCMTK itself will send (it parses first): bad and missing UIDs; then a good one."""
    bad: dict[str, dict[str, object]] = {
        "path-study": {"StudyInstanceUID": "../../../../tmp/escaped"},
        "no-series": {"SeriesInstanceUID": None},
        "letters": {"SeriesInstanceUID": "1.2.abc"},
    }
    for name, changes in bad.items():
        path = tmp_path / "crafted" / f"{name}.dcm"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_with(**changes)())
        result = storescu(dimse_server.port, path, options=["-v"])
        assert result.returncode != 0, (name, result.stderr)
        assert "Error: CannotUnderstand" in result.stderr, result.stderr
    assert archive.counts()["instances"] == 0
    good = write(ct_slice(), tmp_path / "good.dcm")
    result = storescu(dimse_server.port, good)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert archive.counts()["instances"] == 1


def test_dataset_objects_with_bad_uids_from_pynetdicom(
    archive: Archive, dimse_server: DimseServer
) -> None:
    """pynetdicom encoding a Dataset itself (not a file): the same answers."""
    from tests.dimse.peers import status_of, store_ae

    assoc = store_ae().associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            ds: Dataset = ct_slice()
            setattr(ds, keyword, "1.2.3/../../4")
            code, comment = status_of(assoc.send_c_store(ds))
            assert code == st.CANNOT_UNDERSTAND and keyword in comment
        code, _ = status_of(assoc.send_c_store(ct_slice()))
        assert code == st.SUCCESS
    finally:
        assoc.release()
    assert archive.counts()["instances"] == 1


def test_sop_class_differing_from_the_request_is_refused(
    archive: Archive, dimse_server: DimseServer, tmp_path: Path
) -> None:
    ds = ct_slice()
    ct, mr = b"1.2.840.10008.5.1.4.1.1.2\x00", b"1.2.840.10008.5.1.4.1.1.4\x00"
    data = to_bytes(ds).replace(ct, mr, 1)  # the meta's class: the C-STORE announces MR
    crafted = tmp_path / "class-mismatch.dcm"
    crafted.write_bytes(data)
    [(code, comment)] = send_files(dimse_server.port, [crafted])
    assert code == st.DATASET_DOES_NOT_MATCH and "SOPClassUID" in comment
    assert archive.counts()["instances"] == 0


def test_resends_over_dimse(archive: Archive, dimse_server: DimseServer, tmp_path: Path) -> None:
    """An identical resend succeeds without a second copy; a different object under a known
    SOP Instance UID gets the warning 0xB000 and the original is kept."""
    ds = ct_slice()
    first = write(ds, tmp_path / "first.dcm")
    assert send_files(dimse_server.port, [first, first]) == [(st.SUCCESS, "")] * 2
    ds.PatientName = "Other^Person"
    [(code, comment)] = send_files(dimse_server.port, [write(ds, tmp_path / "second.dcm")])
    assert code == st.WARNING_DUPLICATE_KEPT and "original kept" in comment
    assert archive.counts()["instances"] == 1 and len(list(archive.store.list())) == 1
