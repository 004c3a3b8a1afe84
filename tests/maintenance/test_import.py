"""``pacs import`` of folders, zip files and DICOMDIR media, through the real CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydicom.fileset import FileSet

from app.cli import main
from pacs.archive import Archive
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes, write

STUDY = "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    Archive.open(settings).close()  # the archive `pacs serve` created: the CLI needs one
    return settings


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def _counts(settings: Settings) -> dict[str, int]:
    archive = Archive.open(settings)
    try:
        return archive.counts()
    finally:
        archive.close()


def test_folder_with_junk_and_a_bad_file(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "export"
    for index in range(4):
        write(ct_slice(STUDY, index=index), folder / "series1" / f"IM{index}")
    (folder / "README.txt").write_text("viewer instructions")
    (folder / "autorun.inf").write_bytes(b"[autorun]\r\n")
    bad = ct_slice()
    bad.SOPInstanceUID = "1.2.3.abc"
    write(bad, folder / "bad.dcm")
    code, summary = _run(["import", str(folder), "--json"], capsys)
    assert code == 1  # something was rejected
    assert summary["files"] == 7
    assert summary["imported"] == 4 and summary["not_dicom"] == 2 and summary["rejected"] == 1
    assert "SOPInstanceUID" in next(iter(summary["rejected_reasons"]))
    assert _counts(cli)["instances"] == 4
    code, again = _run(["import", str(folder), "--json"], capsys)
    assert again["duplicates"] == 4 and again["imported"] == 0


def test_zip_file_with_traversal_names_writes_nothing_outside(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "cd.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("DICOM/IM1", to_bytes(ct_slice(STUDY, index=1)))
        zf.writestr("../../evil.dcm", to_bytes(ct_slice(STUDY, index=2)))
        zf.writestr("/etc/passwd-like", b"not dicom at all")
    before = set(tmp_path.parent.iterdir())
    code, summary = _run(["import", str(bundle), "--json"], capsys)
    assert code == 0
    assert summary["imported"] == 2 and summary["not_dicom"] == 1
    assert set(tmp_path.parent.iterdir()) == before
    assert not (tmp_path.parent / "evil.dcm").exists()


def test_dicomdir_media(tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    fileset = FileSet()
    for index in range(3):
        fileset.add(ct_slice(STUDY, index=index))
    media = tmp_path / "cdrom"
    fileset.write(media)
    (media / "VIEWER.EXE").write_bytes(b"MZ" + bytes(100))
    assert (media / "DICOMDIR").is_file()
    code, summary = _run(["import", str(media), "--json"], capsys)
    assert code == 0
    assert summary["imported"] == 3 and summary["files"] == 3  # only what the DICOMDIR lists
    code, again = _run(["import", str(media / "DICOMDIR"), "--json"], capsys)
    assert again["duplicates"] == 3


def test_dicomdir_reference_outside_media_refused(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    fileset = FileSet()
    fileset.add(ct_slice(STUDY))
    media = tmp_path / "cd"
    fileset.write(media)
    from pydicom import dcmread

    dicomdir = dcmread(media / "DICOMDIR")
    outside = tmp_path / "secret.dcm"
    write(ct_slice(), outside)
    for record in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            record.ReferencedFileID = ["..", "secret.dcm"]
    dicomdir.save_as(media / "DICOMDIR")
    code, summary = _run(["import", str(media), "--json"], capsys)
    assert code == 1
    assert summary["imported"] == 0 and summary["files"] == 1 and summary["rejected"] == 1
    assert summary["rejected_reasons"] == {"DICOMDIR reference leaves the media folder": 1}
    assert _counts(cli)["instances"] == 0


def test_dicomdir_listing_a_missing_file(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    fileset = FileSet()
    for index in range(2):
        fileset.add(ct_slice(STUDY, index=index))
    media = tmp_path / "cd"
    fileset.write(media)
    next(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR").unlink()
    code, summary = _run(["import", str(media), "--json"], capsys)
    assert code == 1 and summary["imported"] == 1
    assert summary["rejected_reasons"] == {"file listed in the DICOMDIR is missing": 1}


def test_import_is_audited_per_study(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(2):
        write(ct_slice(STUDY, index=index), tmp_path / "in" / f"{index}.dcm")
    _run(["import", str(tmp_path / "in"), "--json"], capsys)
    archive = Archive.open(cli)
    try:
        events = [e for e in archive.audit.events() if e.action == "import"]
        assert [(e.study_uid, e.detail) for e in events] == [(STUDY, "2 instances")]
    finally:
        archive.close()


def test_text_summary(tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    write(ct_slice(STUDY), tmp_path / "one" / "a.dcm")
    assert main(["import", str(tmp_path / "one"), "-q"]) == 0
    assert "1 imported" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "missing")]) == 1


def test_dicomdir_with_a_damaged_file_among_the_slices(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    fileset = FileSet()
    for index in range(4):
        fileset.add(ct_slice(STUDY, index=index))
    media = tmp_path / "cdrom"
    fileset.write(media)
    referenced = sorted(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    assert len(referenced) == 4
    damaged = referenced[0]
    damaged.write_bytes(damaged.read_bytes()[:-1000])  # cut inside the pixel data
    code, summary = _run(["import", str(media), "--json"], capsys)
    assert code == 1
    assert summary["files"] == 4 and summary["imported"] == 3 and summary["rejected"] == 1
    assert summary["not_dicom"] == 0
    assert _counts(cli)["instances"] == 3


def test_folder_holding_media_and_a_zip_counts_each_object_once(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "inbox"
    fileset = FileSet()
    for index in range(2):
        fileset.add(ct_slice(STUDY, index=index))
    fileset.write(folder / "cd1")
    with zipfile.ZipFile(folder / "upload.zip", "w") as zf:
        zf.writestr("a/IM1", to_bytes(ct_slice(STUDY, index=5)))
    write(ct_slice(STUDY, index=6), folder / "loose.dcm")
    code, summary = _run(["import", str(folder), "--json"], capsys)
    assert code == 0, summary
    assert summary["files"] == 4 and summary["imported"] == 4 and summary["duplicates"] == 0
    assert _counts(cli)["instances"] == 4


def test_damaged_zip_member_is_rejected_with_its_reason(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    good, damaged = to_bytes(ct_slice(STUDY, index=1)), to_bytes(ct_slice(STUDY, index=2))
    bundle = tmp_path / "broken.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("good.dcm", good)
        zf.writestr("damaged.dcm", damaged)
    raw = bytearray(bundle.read_bytes())
    where = raw.index(damaged[-64:])
    raw[where] ^= 0xFF  # the CRC no longer matches
    bundle.write_bytes(bytes(raw))
    code, summary = _run(["import", str(bundle), "--json"], capsys)
    assert code == 1
    assert summary["imported"] == 1 and summary["rejected"] == 1
    reason = next(iter(summary["rejected_reasons"]))
    assert "zip member" in reason


def test_zip_bomb_is_refused_while_it_expands(
    tmp_path: Path, cli: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A small zip whose member expands ~1000:1 (issue 15: 1 MiB zip, 924 MiB of temp disk)."""
    good = to_bytes(ct_slice(STUDY, index=1))
    bundle = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.dcm", good)
        with zf.open("bomb.dcm", "w", force_zip64=True) as member:
            for _ in range(64):
                member.write(bytes(1 << 20))  # 64 MiB of zeros, ~64 KiB compressed
        info = zf.getinfo("bomb.dcm")
    assert bundle.stat().st_size < 1 << 20 and info.file_size == 64 << 20
    code, summary = _run(["import", str(bundle), "--json"], capsys)
    assert code == 1
    assert summary["imported"] == 1 and summary["rejected"] == 1
    assert "zip bomb" in next(iter(summary["rejected_reasons"]))
