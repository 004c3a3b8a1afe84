"""DICOM JSON of received datasets (pacs.dicom_json): the memo never changes pydicom's answer."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement

from pacs.dicom_json import JsonMemo, to_json
from tests.dicom_factory import ct_slice, to_bytes


def _read(path: str | Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path, stop_before_pixels=True, force=True)


def _pydicom_files() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom-data files it cannot download here
        return sorted(get_testdata_files("*.dcm"))


def test_memoised_json_equals_pydicoms_on_pydicoms_test_files() -> None:
    """Every file twice through one memo (the second pass served from it) against no memo."""
    files = _pydicom_files()
    assert len(files) > 50
    memo = JsonMemo()
    compared = 0
    for _ in range(2):
        for path in files:
            try:
                expected = to_json(_read(path), memo=None)
            except Exception:  # files pydicom itself cannot express as JSON
                continue
            assert to_json(_read(path), memo=memo) == expected, path
            compared += 1
    assert compared > 100


def test_a_series_repeats_its_elements_from_the_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, series = "1.2.826.0.1.3680043.8.498.5", "1.2.826.0.1.3680043.8.498.6"
    paths = []
    for index in range(2):
        path = tmp_path / f"{index}.dcm"
        path.write_bytes(to_bytes(ct_slice(study, series, index=index)))
        paths.append(path)
    encoded: list[int] = []
    to_json_dict = DataElement.to_json_dict

    def counting(self: DataElement, *args: Any, **kwargs: Any) -> Any:
        encoded.append(self.tag)
        return to_json_dict(self, *args, **kwargs)

    monkeypatch.setattr(DataElement, "to_json_dict", counting)
    memo = JsonMemo()
    outputs = []
    for path in paths:
        encoded.clear()
        outputs.append(to_json(_read(path), memo=memo))
        counts = len(encoded)
        assert outputs[-1] == to_json(_read(path), memo=None)
    first_slice_elements = len(_read(paths[0]).keys())
    assert counts < first_slice_elements / 3, "the second slice was encoded element by element"
    assert outputs[0] != outputs[1]


def test_character_set_is_part_of_what_is_remembered() -> None:
    """The same bytes of a name read under two character sets give two answers."""
    memo = JsonMemo()
    latin = ct_slice(patient_name="Nguyen^Van", charset="ISO_IR 100")
    latin.PatientName = "Müller^Jürgen"
    utf8 = ct_slice(charset="ISO_IR 192")
    raw_latin = to_bytes(latin)
    # The Latin-1 bytes of the name, declared as UTF-8 instead: decoded differently.
    relabelled = raw_latin.replace(b"ISO_IR 100", b"ISO_IR 192")
    first = to_json(dcmread(BytesIO(raw_latin), stop_before_pixels=True), memo=memo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = to_json(dcmread(BytesIO(relabelled), stop_before_pixels=True), memo=memo)
        expected = to_json(dcmread(BytesIO(relabelled), stop_before_pixels=True), memo=None)
    assert "Müller" in first
    assert second == expected
    assert to_json(utf8, memo=memo) == to_json(utf8, memo=None)
