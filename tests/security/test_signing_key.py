"""The signing key made on first use: every process that asks at once gets the same whole key.

HTTP worker processes ask for it lazily, so on a fresh data folder two of them
may make it at the same moment. One is held half-way (after drawing its key,
before anything of it is on disk under the final name) while the other asks.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from pacs.auth import keys
from pacs.settings import Settings


def test_a_process_asking_while_another_makes_the_key_gets_the_same_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first_drawing, release = threading.Event(), threading.Event()
    draws = 0

    def held_token_hex(nbytes: int) -> str:
        nonlocal draws
        draws += 1
        if draws == 1:  # the first maker stops here until the second has its answer
            first_drawing.set()
            release.wait(10)
        return secrets.token_bytes(nbytes).hex()

    monkeypatch.setattr(keys.secrets, "token_hex", held_token_hex)
    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(keys.signing_key(settings)))
    first.start()
    assert first_drawing.wait(10)
    try:
        second = keys.signing_key(settings)
    finally:
        release.set()
        first.join(10)
    assert len(second) == 64
    assert answers == [second]
    assert (settings.data_dir / "secret.key").read_text().strip() == second
    assert [p.name for p in settings.data_dir.iterdir()] == ["secret.key"]  # no draft left


def test_the_key_is_kept_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = keys.signing_key(settings)
    assert keys.signing_key(settings) == key
    assert (settings.data_dir / "secret.key").stat().st_mode & 0o777 == 0o600


def test_a_configured_key_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr("from-the-cluster"))
    assert keys.signing_key(settings) == "from-the-cluster"
    assert not (settings.data_dir / "secret.key").exists()
