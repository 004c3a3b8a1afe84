"""The server's message catalogue: every text a person reads, in Vietnamese and English.

Vietnamese first (non-negotiable 6): pages rendered by the server (share PIN and
withdrawn pages, error pages, result slips and signed PDFs) take their words from
here, never from literals in the code. The catalogue is split per domain, one JSON
file each under ``catalogue/`` (``share.json`` holds ``share.*`` keys), so that two
domains never edit the same file. Each file is ``{"vi": {...}, "en": {...}}`` with
the same keys and the same ``{placeholders}`` in both languages (a test checks).

The browser app has its own catalogue (``viewer/app/src/locales``); both pick the
language the same way: the ``pacs.lang`` cookie, then ``Accept-Language``, then
Vietnamese.
"""

from __future__ import annotations

from pacs.i18n.catalogue_files import Catalogue, load_catalogue
from pacs.i18n.language import DEFAULT_LANGUAGE, LANGUAGE_COOKIE, LANGUAGES, negotiate

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_COOKIE",
    "Catalogue",
    "catalogue",
    "negotiate",
    "translate",
]

_CATALOGUE: Catalogue | None = None


def catalogue() -> Catalogue:
    """The catalogue loaded once from the package's JSON files."""
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = load_catalogue()
    return _CATALOGUE


def translate(key: str, lang: str = DEFAULT_LANGUAGE, **params: object) -> str:
    """The text for ``key`` in ``lang`` (Vietnamese when unknown), ``params`` filled in.

    Raises KeyError for a key in no catalogue file: a missing text is a defect the
    tests must see, not a key shown to a patient.
    """
    return catalogue().text(key, lang, **params)
