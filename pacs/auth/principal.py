"""The identity every door hands to the policy and to the audit trail.

HTTP authentication sets ``request.state.principal``; the DIMSE door builds
one from the association (calling AE title and address). Audit records and
authorization decisions read only this object, never the raw credentials.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    CLINICIAN = "clinician"
    INTEGRATION = "integration"  # machine accounts for HIS/EHR
    AUDITOR = "auditor"
    SHARE = "share"  # a share grant: read-only access to one study
    MODALITY = "modality"  # a DICOM peer (calling AE)
    ANONYMOUS = "anonymous"


class Kind(enum.StrEnum):
    USER = "user"  # logged in with a password (session cookie or HTTP Basic)
    TOKEN = "token"  # bearer API token
    GRANT = "grant"  # share grant
    AE = "ae"  # DICOM application entity
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str  # user name, token owner, grant id, or AE title
    role: Role
    address: str = ""  # client IP (and port for DICOM)
    study_uid: str | None = None  # set only for share grants: the one study they open
    # SMART scopes of a client app's token (pacs.auth.scopes); None: what the role permits
    scopes: frozenset[str] | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.kind is not Kind.ANONYMOUS


ANONYMOUS = Principal(Kind.ANONYMOUS, "", Role.ANONYMOUS)
