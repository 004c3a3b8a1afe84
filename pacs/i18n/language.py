"""Which language a request is answered in: cookie, then Accept-Language, then Vietnamese."""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
# The browser app writes the same cookie when the user switches language.
LANGUAGE_COOKIE = "pacs.lang"


def negotiate(cookies: Mapping[str, str], accept_language: str | None) -> str:
    """The language to answer in, one of :data:`LANGUAGES`.

    An explicit choice (the cookie) wins; then the first supported language in
    ``Accept-Language`` by quality; then Vietnamese, the archive's first language.
    """
    chosen = cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "")[:512].split(",")):
        tag, _, weight = part.strip().partition(";q=")
        primary = tag.split("-")[0].strip().lower()
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            quality = 0.0
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE
