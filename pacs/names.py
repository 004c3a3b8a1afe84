"""Person names in two forms: as shown (UTF-8 NFC) and as searched (folded).

Vietnamese names carry stacked diacritics and the letter đ, which Unicode does
not decompose into d + mark; typing them on a phone or an old modality console
often drops every accent. The folded key drops marks, maps đ/Đ to d, folds
case and turns the PN component separators into spaces, so a search for
"nguyen van an" finds "Nguyễn^Văn An".
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s^=]+")
_STROKED = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L"})


def normalize(text: str) -> str:
    """Canonical stored form: NFC, no trailing padding."""
    return unicodedata.normalize("NFC", text).strip(" \x00")


def fold(text: str) -> str:
    """Search key: marks removed, đ to d, case folded, components space-separated."""
    decomposed = unicodedata.normalize("NFD", text.translate(_STROKED))
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SEPARATORS.sub(" ", bare.casefold()).strip()
