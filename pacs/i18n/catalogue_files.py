"""Loading and checking the per-domain JSON files of the catalogue."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from pacs.i18n.language import DEFAULT_LANGUAGE, LANGUAGES

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"


@dataclass(frozen=True)
class Catalogue:
    """Texts per language: ``texts[lang][key]``, keys prefixed with their file's domain."""

    texts: dict[str, dict[str, str]]

    def text(self, key: str, lang: str, **params: object) -> str:
        table = self.texts.get(lang) or self.texts[DEFAULT_LANGUAGE]
        template = table[key]
        return template.format(**params) if params else template

    def problems(self) -> list[str]:
        """Keys missing from a language, or whose placeholders differ between languages."""
        found: list[str] = []
        keys = set().union(*(set(table) for table in self.texts.values()))
        for key in sorted(keys):
            fields = {}
            for lang in LANGUAGES:
                if key not in self.texts[lang]:
                    found.append(f"{key}: no {lang} text")
                    continue
                fields[lang] = placeholders(self.texts[lang][key])
            if len(set(map(frozenset, fields.values()))) > 1:
                found.append(f"{key}: placeholders differ {fields}")
        return found


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_catalogue(directory: Path = CATALOGUE_DIR) -> Catalogue:
    """Every ``*.json`` file of ``directory``, its keys prefixed with the file's stem."""
    texts: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for path in sorted(directory.glob("*.json")):
        content = json.loads(path.read_text(encoding="utf-8"))
        for lang in LANGUAGES:
            for key, value in content.get(lang, {}).items():
                texts[lang][f"{path.stem}.{key}"] = value
    return Catalogue(texts)
