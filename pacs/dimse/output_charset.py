"""Character-set output profiles for DIMSE responses (per remote AE).

The index holds UTF-8 text and answers in ISO_IR 192. Old modality consoles
and workstations often understand only ASCII or Latin-1 and show mojibake (or
reject the response) when handed UTF-8 Vietnamese names. For them each text
value is brought into the target repertoire character by character: a letter
keeps as many of its marks as the repertoire can carry ("ễ" becomes "ê" in
Latin-1 and "e" in ASCII), đ/Đ become d/D, and only what still cannot be
encoded becomes "?". Case and the PN separators (^ and =) are kept, unlike the
folded search key.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

Profile = Literal["utf8", "ascii", "latin1"]

_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_STROKED = str.maketrans({"đ": "d", "Đ": "D"})
_CODEC = {"ascii": "ascii", "latin1": "latin-1"}
_CHARSET = {"utf8": "ISO_IR 192", "latin1": "ISO_IR 100"}


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _nearest(char: str, codec: str) -> str:
    """``char`` with its trailing combining marks dropped until ``codec`` can encode it."""
    decomposed = unicodedata.normalize("NFD", char.translate(_STROKED))
    while decomposed:
        candidate = unicodedata.normalize("NFC", decomposed)
        if _encodable(candidate, codec):
            return candidate
        if unicodedata.category(decomposed[-1]) != "Mn":
            break
        decomposed = decomposed[:-1]
    return "?"


def to_repertoire(text: str, codec: str) -> str:
    """``text`` rewritten so that ``codec`` encodes it, losing as little as possible."""
    text = unicodedata.normalize("NFC", text)
    if _encodable(text, codec):
        return text
    return "".join(ch if _encodable(ch, codec) else _nearest(ch, codec) for ch in text)


def _convert_value(value: object, vr: str, codec: str) -> object:
    if isinstance(value, PersonName):
        # Ideographic and phonetic groups need ISO 2022 code extensions: keep the alphabetic one.
        return to_repertoire(str(value).split("=")[0], codec)
    if isinstance(value, str):
        return to_repertoire(value, codec)
    return value


def _convert(ds: Dataset, codec: str) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _convert(item, codec)
        elif elem.VR in _TEXT_VRS and elem.value not in (None, ""):
            if isinstance(elem.value, MultiValue | list):
                elem.value = [_convert_value(v, elem.VR, codec) for v in elem.value]
            else:
                elem.value = _convert_value(elem.value, elem.VR, codec)


def apply_profile(ds: Dataset, profile: str) -> Dataset:
    """Rewrite a UTF-8 response dataset in place for ``profile`` and set its character set."""
    codec = _CODEC.get(profile)
    if codec is not None:
        _convert(ds, codec)
    charset = _CHARSET.get(profile)
    if charset is None:
        if "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet  # the default repertoire (ISO_IR 6) is stated by absence
    else:
        ds.SpecificCharacterSet = charset
    return ds
