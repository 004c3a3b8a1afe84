"""CLI wiring for import, check and reindex (filled in by their own modules)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the maintenance sub-commands to the ``pacs`` parser."""
