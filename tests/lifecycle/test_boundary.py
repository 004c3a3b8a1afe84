"""Doors reach the archive only through its facade: no session factory, engine or blob store.

The import contracts (``make lint``) stop a door from importing the index or
the store; they cannot see a door reading ``archive.sessions`` or
``archive.store`` and handing them on. This test reads the doors' source and
fails on any such attribute, wherever it is read from.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOORS = [
    "pacs/dimse",
    "dicomweb",
    "viewer",
    "admin",
    "pacs/auth/routes.py",
    "pacs/audit/routes.py",
    "pacs/auth/cli.py",
    "pacs/jobs/cli.py",
    "pacs/config/cli.py",
    "pacs/maintenance_cli.py",
]
INTERNALS = {"sessions", "engine", "store", "ingestor"}


def _door_files() -> list[Path]:
    files: list[Path] = []
    for door in DOORS:
        path = ROOT / door
        if path.is_dir():
            files += [p for p in path.rglob("*.py") if "node_modules" not in p.parts]
        elif path.exists():
            files.append(path)
    return files


def _is_archive(node: ast.expr) -> bool:
    """``archive``, ``self.archive``, ``request.app.state.archive`` or ``_archive(request)``."""
    if isinstance(node, ast.Name):
        return node.id == "archive"
    if isinstance(node, ast.Attribute):
        return node.attr == "archive"
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        return name in ("_archive", "get_archive")
    return False


def test_doors_use_no_archive_internals() -> None:
    files = _door_files()
    assert len(files) > 30, "the door modules should all be found"
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in INTERNALS
                and _is_archive(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert found == [], "doors must call the facade instead:\n" + "\n".join(found)
