"""Backup and restore of the archive (issue 20 item 5); ``pacs check`` verifies the result."""

from pacs.backup.service import (
    BackupError,
    BackupReport,
    RestoreReport,
    backup,
    blob_list,
    read_manifest,
    restore,
)

__all__ = [
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "backup",
    "blob_list",
    "read_manifest",
    "restore",
]
