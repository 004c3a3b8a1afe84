"""Ingest: the one writer path, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from pacs.archive import Archive, ingest
from pacs.archive.ingest import InvalidObject, Origin, Outcome, Spool
from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from pacs.part10 import read_header
from pacs.reindex import clear_index
from pacs.settings import DuplicatePolicy
from tests.dicom_factory import ct_slice, to_bytes

IMPORT = Origin("import")


def _ingest(archive: Archive, data: bytes, origin: Origin = IMPORT):
    return archive.ingest(io.BytesIO(data), origin)


def test_stores_bytes_as_received_and_indexes_every_level(archive: Archive) -> None:
    data = to_bytes(ct_slice(index=3))
    result = _ingest(archive, data)
    assert result.outcome is Outcome.STORED
    with archive.store.open(result.blob_key) as fp:
        stored = fp.read()
    assert stored == data
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    with archive.sessions() as session:
        instance = session.scalar(select(Instance))
        assert instance is not None
        assert instance.sha256 == result.sha256 and instance.blob_key == result.blob_key
        assert instance.instance_number == 4 and instance.rows == 64
        series = session.scalar(select(Series))
        study = session.scalar(select(Study))
        patient = session.scalar(select(Patient))
        assert series is not None and series.modality == "CT"
        assert study is not None and study.study_date == "20261120"
        assert patient is not None and patient.name == "Nguyễn^Văn An"
        assert patient.name_folded == "nguyen van an"


def test_dicom_json_keeps_attributes_without_bulk_data(archive: Archive) -> None:
    ds = ct_slice()
    ds.add_new(0x00091010, "OB", b"\x01" * 4096)  # private bulk value
    result = _ingest(archive, to_bytes(ds))
    with archive.sessions() as session:
        instance = session.scalar(
            select(Instance).where(Instance.sop_instance_uid == result.sop_instance_uid)
        )
        assert instance is not None
        document = instance.dicom_json
    assert '"Alphabetic":"Nguyễn^Văn An"' in document
    assert '"00091010":{"vr":"OB","BulkDataURI":"bulkdata/00091010"}' in document
    # Pixel data is never copied into the index: it is named by a BulkDataURI.
    assert document.endswith('"7FE00010":{"vr":"OW","BulkDataURI":"bulkdata/7FE00010"}}')


def test_identical_resend_is_idempotent(archive: Archive) -> None:
    data = to_bytes(ct_slice())
    first = _ingest(archive, data)
    second = _ingest(archive, data)
    assert second.outcome is Outcome.DUPLICATE and second.blob_key == first.blob_key
    assert archive.counts()["instances"] == 1


def test_the_same_object_stored_twice_at_once_succeeds_twice(archive: Archive) -> None:
    """Two associations sending one object at once: both pass the duplicate check, one
    index insert loses; that one must still be a success, not 'retry later'."""
    data = to_bytes(ct_slice())
    real_put = archive.store.put
    both_checked = threading.Barrier(2, timeout=10)

    def put_after_both_checked(key: str, stream: object, size: int | None = None) -> object:
        both_checked.wait()
        return real_put(key, stream, size)  # type: ignore[arg-type]

    archive.store.put = put_after_both_checked  # type: ignore[method-assign,assignment]
    results = []
    threads = [threading.Thread(target=lambda: results.append(_ingest(archive, data)))]
    threads.append(threading.Thread(target=lambda: results.append(_ingest(archive, data))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.outcome for r in results) == [Outcome.DUPLICATE, Outcome.STORED]
    assert archive.counts()["instances"] == 1
    (stored,) = archive.locate()
    with archive.open_blob(stored.blob_key) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == stored.sha256


def test_conflicting_resend_keeps_original_by_default(archive: Archive) -> None:
    ds = ct_slice()
    first = _ingest(archive, to_bytes(ds))
    ds.PatientName = "Other^Person"
    second = _ingest(archive, to_bytes(ds))
    assert second.outcome is Outcome.CONFLICT_KEPT and "original kept" in second.warning
    with archive.store.open(first.blob_key) as fp:
        assert dcmread(fp).PatientName == "Nguyễn^Văn An"
    assert [b.key for b in archive.store.list()] == [first.blob_key]


def test_replace_policy_swaps_blob_and_row(archive: Archive) -> None:
    archive.ingestor.duplicate_policy = DuplicatePolicy.REPLACE
    ds = ct_slice()
    first = _ingest(archive, to_bytes(ds))
    ds.SeriesDescription = "corrected"
    second = _ingest(archive, to_bytes(ds))
    assert second.outcome is Outcome.REPLACED and second.blob_key != first.blob_key
    assert [b.key for b in archive.store.list()] == [second.blob_key]
    with archive.sessions() as session:
        assert session.scalar(select(Instance.sha256)) == second.sha256


def test_non_dicom_preamble_is_zeroed(archive: Archive) -> None:
    data = bytearray(to_bytes(ct_slice()))
    data[0:4] = b"II*\x00"  # a TIFF header hiding in the preamble (CVE-2019-11687)
    result = _ingest(archive, bytes(data))
    with archive.store.open(result.blob_key) as fp:
        stored = fp.read()
    assert stored[:128] == b"\x00" * 128 and stored[128:] == bytes(data[128:])


def test_bare_dataset_gets_a_file_meta_header(archive: Archive) -> None:
    ds = ct_slice()
    del ds.file_meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False, implicit_vr=True, little_endian=True)
    raw = buffer.getvalue()
    assert raw[128:132] != b"DICM"
    result = _ingest(archive, raw)
    with archive.store.open(result.blob_key) as fp:
        stored = dcmread(fp)
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert stored.SOPInstanceUID == ds.SOPInstanceUID


def test_missing_charset_uses_fallback(archive: Archive) -> None:
    ds = ct_slice(charset=None, patient_name="M\xfcller^J\xfcrgen")
    data = to_bytes(ds)  # written as latin-1 bytes, no SpecificCharacterSet
    _ingest(archive, data)
    with archive.sessions() as session:
        assert session.scalar(select(Patient.name)) == "Müller^Jürgen"


def test_other_patient_ids_are_indexed(archive: Archive) -> None:
    from pydicom.dataset import Dataset

    ds = ct_slice()
    item = Dataset()
    item.PatientID = "079123456789"
    item.IssuerOfPatientID = "CCCD"
    item.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [item]
    _ingest(archive, to_bytes(ds))
    with archive.sessions() as session:
        ids = session.scalars(select(PatientIdentifier)).all()
        assert [(i.value, i.issuer) for i in ids] == [("079123456789", "CCCD")]


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("SOPInstanceUID", "1.2.3/../4", "not digits and dots"),
        ("SOPInstanceUID", "1.2.3\\4", "not digits and dots"),
        ("StudyInstanceUID", "../../etc", "not digits and dots"),
        ("SeriesInstanceUID", "1.2." + "3" * 70, "longer than 64"),
        ("SOPClassUID", "", "SOPClassUID is missing"),
    ],
)
def test_bad_uids_are_refused_and_nothing_is_written(
    archive: Archive, field: str, value: str, reason: str
) -> None:
    ds = ct_slice()
    setattr(ds, field, value)
    with pytest.raises(InvalidObject, match=reason):
        _ingest(archive, to_bytes(ds))
    assert list(archive.store.list()) == []
    assert archive.counts()["instances"] == 0


@pytest.mark.parametrize("cut", [50, 140, 300, -100, -1])
def test_truncated_objects_are_refused(archive: Archive, cut: int) -> None:
    data = to_bytes(ct_slice())
    with pytest.raises(InvalidObject):
        _ingest(archive, data[:cut])
    assert list(archive.store.list()) == []


def test_absurd_declared_length_is_refused(archive: Archive) -> None:
    data = bytearray(to_bytes(ct_slice()))
    at = data.index(b"\xe0\x7f\x10\x00OW")  # Pixel Data header, explicit VR little endian
    data[at + 8 : at + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(InvalidObject, match="declares"):
        _ingest(archive, bytes(data))


def _series_of(archive: Archive, sop_uid: str) -> str:
    with archive.sessions() as session:
        series = session.scalar(
            select(Series).join(Instance).where(Instance.sop_instance_uid == sop_uid)
        )
        assert series is not None
        return series.series_uid


def test_a_series_arriving_image_by_image_shares_its_parent_rows(archive: Archive) -> None:
    study, series = generate_uid(), generate_uid()
    sops = [
        _ingest(archive, to_bytes(ct_slice(study, series, index=i))).sop_instance_uid
        for i in range(5)
    ]
    with archive.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Series)) == 1
        assert session.scalar(select(func.count()).select_from(Study)) == 1
        assert session.scalar(select(func.count()).select_from(Instance)) == 5
    assert {_series_of(archive, sop) for sop in sops} == {series}


def test_an_index_rebuilt_under_a_running_writer_files_nothing_under_the_wrong_series(
    archive: Archive,
) -> None:
    """Row keys are reused after the index is emptied; remembered keys must not misfile."""
    study, series = generate_uid(), generate_uid()
    _ingest(archive, to_bytes(ct_slice(study, series, index=0)))
    clear_index(archive)  # `pacs reindex` from another process empties the tables
    other = _ingest(archive, to_bytes(ct_slice(index=0, patient_id="BN0002")))  # reuses the keys
    late = _ingest(archive, to_bytes(ct_slice(study, series, index=1)))
    assert _series_of(archive, late.sop_instance_uid) == series
    assert _series_of(archive, other.sop_instance_uid) == other.series_uid
    with archive.sessions() as session:
        patient = session.scalar(select(Patient).join(Study).where(Study.study_uid == study))
        assert patient is not None and patient.patient_id == "BN0001"


def test_a_spool_file_that_is_already_the_stored_bytes_becomes_the_blob(
    archive: Archive, tmp_path: Path
) -> None:
    """The DIMSE door's spool file is taken by a hard link when nothing in it must change."""
    spool = tmp_path / "spooled.dcm"
    spool.write_bytes(to_bytes(ct_slice(index=1)))
    with spool.open("rb") as fp:
        result = archive.ingest(fp, Origin("dimse"), spool=Spool(spool))
    blob = Path(archive.store.root) / result.blob_key  # type: ignore[attr-defined]
    assert blob.stat().st_ino == spool.stat().st_ino  # the same file, not a copy
    spool.unlink()
    with archive.store.open(result.blob_key) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == result.sha256


def test_a_spool_file_with_a_preamble_to_zero_is_copied(archive: Archive, tmp_path: Path) -> None:
    data = bytearray(to_bytes(ct_slice(index=2)))
    data[:8] = b"MZ\x90\x00\x03\x00\x00\x00"  # CVE-2019-11687: an executable's header
    spool = tmp_path / "spooled.dcm"
    spool.write_bytes(bytes(data))
    with spool.open("rb") as fp:
        result = archive.ingest(fp, Origin("dimse"), spool=Spool(spool))
    assert spool.read_bytes()[:2] == b"MZ"  # the spool file itself is left alone
    with archive.store.open(result.blob_key) as fh:
        assert fh.read(128) == b"\x00" * 128


def test_a_known_head_is_not_read_again_unless_meta_elements_follow_it(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A door that wrote the head passes it; a dataset that repeats file meta is read afresh."""
    data = to_bytes(ct_slice(index=3))
    with io.BytesIO(data) as fp:
        head = read_header(fp)
    reads: list[object] = []
    real_read_header = ingest.read_header
    monkeypatch.setattr(ingest, "read_header", lambda fp: reads.append(fp) or real_read_header(fp))
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(data)
    with plain.open("rb") as fp:
        result = archive.ingest(fp, Origin("dimse"), spool=Spool(plain, header=head))
    assert reads == []
    with archive.store.open(result.blob_key) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == result.sha256
    # A sender that put (0002,0013) into the dataset: a meta reader takes it as meta.
    extra = b"\x02\x00\x13\x00SH\x06\x00OTHER "
    odd = tmp_path / "odd.dcm"
    odd.write_bytes(data[: head.body_offset] + extra + data[head.body_offset :])
    with odd.open("rb") as fp:
        result = archive.ingest(fp, Origin("dimse"), spool=Spool(odd, header=head))
    # read afresh once (and the held copy's head too: this resend differs from it)
    assert sum(getattr(r, "name", "") == str(odd) for r in reads) == 1
    with archive.sessions() as session:
        stored = session.scalar(
            select(Instance.dicom_json).where(Instance.sop_instance_uid == result.sop_instance_uid)
        )
    assert stored is not None and "00020013" not in stored
