"""What a person sees from this door in a browser, in Vietnamese and English.

The language is the first of ``vi``/``en`` in the browser's Accept-Language;
Vietnamese, the hospital's language, when it names neither.
"""

from __future__ import annotations

from fastapi import Request

MESSAGES: dict[str, dict[str, str]] = {
    "vi": {
        "studies_of": "Các ca chụp của bệnh nhân",
        "date": "Ngày chụp",
        "modality": "Loại máy",
        "description": "Mô tả",
        "accession": "Số phiếu chỉ định",
        "open": "Mở",
        "no_studies": "Không tìm thấy ca chụp nào.",
        "bad_request": "Yêu cầu không hợp lệ",
    },
    "en": {
        "studies_of": "Imaging studies of",
        "date": "Study date",
        "modality": "Modality",
        "description": "Description",
        "accession": "Accession number",
        "open": "Open",
        "no_studies": "No studies found.",
        "bad_request": "Invalid request",
    },
}


def language(request: Request) -> str:
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in MESSAGES:
            return tag
    return "vi"


def text(request: Request, key: str) -> str:
    return MESSAGES[language(request)][key]
