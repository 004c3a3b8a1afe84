"""The server's message catalogue: complete in both languages, negotiated like the browser app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pacs.i18n import catalogue, negotiate, translate
from pacs.i18n.catalogue_files import load_catalogue


def test_every_key_has_both_languages_with_the_same_placeholders() -> None:
    assert catalogue().problems() == []


def test_a_missing_text_is_found_by_the_check(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text(
        json.dumps({"vi": {"a": "Xin chào {name}", "b": "Có"}, "en": {"a": "Hello {who}"}}),
        encoding="utf-8",
    )
    problems = load_catalogue(tmp_path).problems()
    assert any(p.startswith("demo.a: placeholders differ") for p in problems)
    assert "demo.b: no en text" in problems


def test_translate_fills_placeholders_and_keeps_diacritics() -> None:
    assert translate("share.wrong_pin", "vi", failures=2, limit=5) == "Mã PIN không đúng (2/5)."
    assert translate("share.wrong_pin", "en", failures=2, limit=5) == "Wrong PIN (2/5)."
    assert translate("share.withdrawn", "fr") == translate("share.withdrawn", "vi")
    with pytest.raises(KeyError):
        translate("share.no_such_text", "vi")


@pytest.mark.parametrize(
    ("cookies", "accept", "expected"),
    [
        ({}, None, "vi"),
        ({}, "en-GB,en;q=0.9", "en"),
        ({}, "fr-FR,fr;q=0.9,en;q=0.5,vi;q=0.8", "vi"),
        ({"pacs.lang": "en"}, "vi", "en"),
        ({"pacs.lang": "de"}, "en", "en"),
        ({}, "en;q=0,de", "vi"),
        ({}, "en;q=abc", "vi"),
    ],
)
def test_language_negotiation(cookies: dict[str, str], accept: str | None, expected: str) -> None:
    assert negotiate(cookies, accept) == expected
