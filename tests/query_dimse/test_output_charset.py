"""Output character-set profiles: what old devices receive instead of UTF-8."""

from __future__ import annotations

from pydicom.dataset import Dataset

from pacs.dimse.output_charset import apply_profile, to_repertoire


def _response() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Đặng^Thị Hạnh=鄧^氏幸"
    ds.StudyDescription = "CT ngực có cản quang"
    item = Dataset()
    item.PatientID = "079080001234"
    item.IssuerOfPatientID = "Bộ Công an"
    ds.OtherPatientIDsSequence = [item]
    ds.StudyInstanceUID = "1.2.3"
    return ds


def test_ascii_folds_marks_and_d_but_keeps_case_and_separators() -> None:
    ds = apply_profile(_response(), "ascii")
    assert "SpecificCharacterSet" not in ds
    assert str(ds.PatientName) == "Dang^Thi Hanh"
    assert ds.StudyDescription == "CT nguc co can quang"
    assert ds.OtherPatientIDsSequence[0].IssuerOfPatientID == "Bo Cong an"
    assert ds.StudyInstanceUID == "1.2.3"


def test_latin1_keeps_the_marks_latin1_has() -> None:
    ds = apply_profile(_response(), "latin1")
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert str(ds.PatientName) == "Dang^Thi Hanh"
    assert ds.StudyDescription == "CT nguc có can quang"
    assert to_repertoire("Nguyễn Ánh", "latin-1") == "Nguyên Ánh"
    assert to_repertoire("東京", "latin-1") == "??"


def test_utf8_is_untouched() -> None:
    ds = apply_profile(_response(), "utf8")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Đặng^Thị Hạnh=鄧^氏幸"
