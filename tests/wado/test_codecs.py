"""The multipart reader/writer and the Accept parser on awkward but legal input."""

from __future__ import annotations

import random

import pytest

from dicomweb.accept import parse_accept
from dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    Part,
    PartData,
    PartEnd,
    PartStart,
    iter_message,
    message_length,
)


def _read(body: bytes, boundary: str, sizes: list[int]) -> list[tuple[dict[str, str], bytes]]:
    reader = MultipartReader(boundary)
    parts: list[tuple[dict[str, str], bytes]] = []
    position = 0
    for size in [*sizes, len(body)]:
        for event in reader.feed(body[position : position + size]):
            if isinstance(event, PartStart):
                parts.append((event.headers, b""))
            elif isinstance(event, PartData):
                parts[-1] = (parts[-1][0], parts[-1][1] + event.data)
            else:
                assert isinstance(event, PartEnd)
        position += size
    reader.close()
    return parts


@pytest.mark.parametrize("chunk", [1, 2, 7, 33, 4096])
def test_round_trip_whatever_the_chunking(chunk: int) -> None:
    rng = random.Random(chunk)
    boundary = "abc123"
    # Bodies that contain near-boundaries, CRLFs and dashes.
    bodies = [b"\r\n--abc12\r\n--abc", b"", bytes(rng.randrange(256) for _ in range(5000))]
    parts = [Part("application/dicom", [body], len(body)) for body in bodies]
    message = b"".join(iter_message(parts, boundary))
    assert message_length(parts, boundary) == len(message)
    got = _read(message, boundary, [chunk] * (len(message) // chunk + 1))
    assert [body for _, body in got] == bodies
    assert got[0][0]["content-type"] == "application/dicom"


def test_preamble_leading_crlf_and_truncation() -> None:
    message = b"ignored preamble\r\n--b\r\nContent-Type: x/y\r\n\r\nDATA\r\n--b--\r\nepilogue"
    assert _read(message, "b", [5]) == [({"content-type": "x/y"}, b"DATA")]
    with pytest.raises(MultipartError):
        _read(message[:30], "b", [5])


def test_accept_parsing_is_lenient() -> None:
    ranges = parse_accept(
        'image/png;q=0.5, multipart/related; type=application/dicom; transfer-syntax="*",'
        ' multipart/related;type="application/octet-stream";q=0.8, , */*;q=0'
    )
    assert [r.part_type for r in ranges] == [
        "application/dicom",
        "application/octet-stream",
        "image/png",
    ]
    assert ranges[0].transfer_syntax == "*"
    assert parse_accept(None)[0].media_type == "*/*"
    assert parse_accept("*")[0].media_type == "*/*"
    assert parse_accept("text/html;q=abc")[0].q == 1.0


def test_message_pieces_are_coalesced_into_bounded_chunks() -> None:
    """Small heads, bodies and CRLFs leave as a few chunks of about COALESCE_BYTES, not one
    chunk each, and the bytes are the same as written piece by piece."""
    from dicomweb import multipart

    body = bytes(range(256)) * 1024  # 256 KiB per part
    parts = [Part("application/dicom", [body], len(body)) for _ in range(20)]
    chunks = list(iter_message(parts, "b0"))
    assert b"".join(chunks) == b"".join(multipart._pieces(parts, "b0"))
    assert len(chunks) == 3  # 20 x 256 KiB in 2 MiB chunks, the rest in a last one
    biggest = max(len(chunk) for chunk in chunks)
    assert multipart.COALESCE_BYTES <= biggest < multipart.COALESCE_BYTES + len(body) + 1024
