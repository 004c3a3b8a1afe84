"""Runtime configuration kept in the index database: DICOM peers and allowed calling AEs.

An administrator changes it while the archive runs (admin API, ``pacs ae``);
every node sees the change within seconds. The settings file only seeds it.
"""

from pacs.config.echo import EchoResult
from pacs.config.peers import Caller, Verdict
from pacs.config.service import RemoteAEs
from pacs.config.values import (
    SERVICES,
    DuplicateAE,
    InvalidConfig,
    RemoteAE,
    UnknownAE,
    remote_ae,
)

__all__ = [
    "SERVICES",
    "Caller",
    "DuplicateAE",
    "EchoResult",
    "InvalidConfig",
    "RemoteAE",
    "RemoteAEs",
    "UnknownAE",
    "Verdict",
    "remote_ae",
]
