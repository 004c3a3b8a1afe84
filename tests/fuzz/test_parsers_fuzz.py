"""The DICOMweb door's parsers under generated input: they answer or refuse, never crash.

The multipart reader takes a STOW-RS body as it arrives, in chunks of any
size; the Accept parser takes whatever header a client sends; the DICOM JSON
writer takes whatever text a modality put in a dataset. Each either gives
its result or raises its own error, which the door turns into a 4xx.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from dicomweb.accept import parse_accept
from dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    Part,
    PartData,
    PartEnd,
    PartStart,
    iter_message,
)
from pacs.dicom_json import to_json
from tests.fuzz.conftest import budget

DICOM = "application/dicom"
boundaries = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=70
)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def _read(boundary: str, chunks: list[bytes]) -> list[tuple[dict[str, str], bytes]]:
    reader = MultipartReader(boundary)
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks:
        for event in reader.feed(chunk):
            if isinstance(event, PartStart):
                parts.append((event.headers, b""))
            elif isinstance(event, PartData):
                headers, body = parts[-1]
                parts[-1] = (headers, body + event.data)
            else:
                assert isinstance(event, PartEnd)
    reader.close()
    return parts


@budget(200)
@given(
    boundary=boundaries,
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_multipart_round_trip_in_any_chunks(
    boundary: str, bodies: list[bytes], cuts: list[int]
) -> None:
    """What our writer frames, our reader gives back, however the network cuts it."""
    if any(f"--{boundary}".encode() in body for body in bodies):
        return  # a body may not contain its delimiter (the writer picks random boundaries)
    message = b"".join(
        iter_message(
            [Part("application/dicom", iter([body]), len(body)) for body in bodies], boundary
        )
    )
    parts = _read(boundary, _chunked(message, cuts))
    assert [body for _headers, body in parts] == bodies
    assert all(headers["content-type"] == DICOM for headers, _ in parts)


@budget(300)
@given(
    boundary=st.one_of(boundaries, st.text(max_size=300)),
    body=st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.sampled_from(
                [b"--", b"\r\n", b"\r\n\r\n", b"Content-Type: x", b"--b", b"b", b"\x00"]
            ),
            max_size=40,
        ).map(b"".join),
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_multipart_reader_refuses_garbage_cleanly(
    boundary: str, body: bytes, cuts: list[int]
) -> None:
    try:
        reader = MultipartReader(boundary)
    except (MultipartError, UnicodeEncodeError):
        return  # refused at once: the door checks the boundary before reading (400)
    try:
        for chunk in _chunked(body, cuts):
            reader.feed(chunk)
        reader.close()
    except MultipartError as exc:
        assert str(exc)


@budget(300)
@given(header=st.one_of(st.text(max_size=200), st.from_regex(r"\A[a-z/+*;=,\" .0-9-]{0,120}\Z")))
def test_accept_header_parses_or_is_ignored(header: str) -> None:
    for media in parse_accept(header):
        assert isinstance(media.is_multipart, bool)
        assert media.part_type is None or isinstance(media.part_type, str)


TEXT_KEYWORDS = ["PatientName", "PatientID", "StudyDescription", "InstitutionName"]
TEXT_KEYWORDS += ["AccessionNumber", "ReferringPhysicianName", "StudyDate"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@budget(200)
@given(values=st.lists(st.tuples(st.sampled_from(TEXT_KEYWORDS), st.text(max_size=64)), max_size=5))
@example(values=[("PatientName", "A\\")])  # pydicom's PN writer raised IndexError on it
def test_dicom_json_of_any_text_is_valid_json(values: list[tuple[str, str]]) -> None:
    """Ingest indexes any dataset as DICOM JSON: an undecodable value is a noted defect."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in values:
        setattr(ds, keyword, value)
    defects: list[str] = []
    parsed = json.loads(to_json(ds, memo=None, defects=defects))
    assert isinstance(parsed, dict) and "00080005" in parsed
    assert Dataset.from_json(parsed) is not None
    assert all(isinstance(defect, str) for defect in defects)
