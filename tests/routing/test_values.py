"""Rule matching: DICOM-style wildcards on each field, sets of values, time windows."""

from __future__ import annotations

from datetime import datetime

import pytest

from pacs.routing.values import Arrival, InvalidRoute, endpoint, in_window, rule

CT = Arrival(
    study_uid="1.2.3",
    calling_aes=("CT_TANG2", "WS01"),
    modalities=("CT", "SR"),
    body_parts=("CHEST",),
    description="CT ngực có cản quang",
    stamp="x",
)
NOON = datetime(2026, 12, 5, 12, 0)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, True),
        ({"modality": "CT"}, True),
        ({"modality": "mr"}, False),
        ({"modality": "c?"}, True),  # case-insensitive, ? one character
        ({"calling_ae": "CT_*"}, True),
        ({"calling_ae": "CT"}, False),  # whole value, not a substring
        ({"body_part": "CHEST", "modality": "SR"}, True),  # any series' value
        ({"description": "*ngực*"}, True),
        ({"description": "*bụng*"}, False),
        ({"description": "CT [a]*"}, False),  # brackets are literal, not a class
        ({"window_start": "11:00", "window_end": "13:00"}, True),
        ({"window_start": "13:00", "window_end": "11:00"}, False),  # crosses midnight
        ({"enabled": False}, False),
    ],
)
def test_matching(fields: dict[str, object], expected: bool) -> None:
    value = rule(name="r", destination="ae:BACKUP", **fields)
    assert value.matches(CT, NOON) is expected


def test_windows_crossing_midnight() -> None:
    assert in_window("22:00", "06:00", datetime(2026, 1, 1, 23, 30))
    assert in_window("22:00", "06:00", datetime(2026, 1, 1, 5, 59))
    assert not in_window("22:00", "06:00", datetime(2026, 1, 1, 6, 0))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"destination": "smtp:x"}, "destination"),
        ({"destination": "ae:"}, "destination"),
        ({"trigger": "hourly"}, "trigger"),
        ({"window_start": "25:00", "window_end": "01:00"}, "window_start"),
        ({"window_start": "10:00"}, "both or neither"),
        ({"name": ""}, "name"),
        ({"name": "../x"}, "name"),
        ({"priority": 5000}, "priority"),
    ],
)
def test_bad_rules_say_why(fields: dict[str, object], reason: str) -> None:
    base: dict[str, object] = {"name": "r", "destination": "ae:X"}
    with pytest.raises(InvalidRoute, match=reason):
        rule(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"url": "ftp://x/y"}, "url"),
        ({"url": "http://u:p@host/dicom-web"}, "credentials"),
        ({"auth": "bearer"}, "secret"),
        ({"auth": "basic", "secret": "s"}, "username"),
        ({"auth": "kerberos"}, "auth"),
    ],
)
def test_bad_endpoints_say_why(fields: dict[str, object], reason: str) -> None:
    base: dict[str, object] = {"name": "up", "url": "https://pacs.example.vn/dicom-web"}
    with pytest.raises(InvalidRoute, match=reason):
        endpoint(**{**base, **fields})
