"""Rows of the study lifecycle: deletions awaiting purge, legal holds, corrections.

A deleted study, series or instance leaves the imaging tables at once (so no
query, retrieval or viewer can reach it, whatever the door) and is recorded
here: who deleted it, when, why, for which patient, and the blobs that still
hold its bytes until the purge removes them after the configured delay.

A correction never rewrites the bytes a modality sent: each one is a version
row (who, when, why, old and new values), and the study's current corrected
attributes are kept beside it so retrieval can present them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import UID, Base

TZ = DateTime(timezone=True)


class Deletion(Base):
    """One delete request: what, whose, who, when, why, and when its bytes go."""

    __tablename__ = "deletion"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(16))  # study, series, instance
    study_uid: Mapped[str] = mapped_column(UID, index=True)
    series_uid: Mapped[str] = mapped_column(UID, default="")
    sop_instance_uid: Mapped[str] = mapped_column(UID, default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    instances: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    deleted_by: Mapped[str] = mapped_column(String(128), default="")
    deleted_at: Mapped[datetime] = mapped_column(TZ)
    purge_after: Mapped[datetime] = mapped_column(TZ, index=True)
    purged_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    # An IOCM rejection (pacs.archive.rejection): the KOS document title code
    # (113001, 113037, 113038, 113039) and the rejection note's SOP Instance UID.
    rejection_code: Mapped[str] = mapped_column(String(16), default="")
    rejection_note_uid: Mapped[str] = mapped_column(UID, default="")


class DeletedBlob(Base):
    """A blob of a deleted instance, kept until its deletion is purged."""

    __tablename__ = "deleted_blob"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    deletion_pk: Mapped[int] = mapped_column(
        ForeignKey("deletion.pk", ondelete="CASCADE"), index=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    blob_key: Mapped[str] = mapped_column(String(256), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class LegalHold(Base):
    """A study that must not be deleted until an administrator releases the hold."""

    __tablename__ = "legal_hold"

    study_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    held_by: Mapped[str] = mapped_column(String(128), default="")
    held_at: Mapped[datetime] = mapped_column(TZ)


class CorrectionVersion(Base):
    """One audited correction of a study's patient or study attributes (version 1, 2, ...)."""

    __tablename__ = "correction_version"
    __table_args__ = (UniqueConstraint("study_uid", "version", name="uq_correction_version"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(UID, index=True)
    version: Mapped[int] = mapped_column(Integer)
    changes: Mapped[str] = mapped_column(Text)  # JSON: {keyword: {"old": str, "new": str}}
    reason: Mapped[str] = mapped_column(Text, default="")
    corrected_by: Mapped[str] = mapped_column(String(128), default="")
    corrected_at: Mapped[datetime] = mapped_column(TZ)


class CorrectedStudy(Base):
    """The attributes a study's retrieval presents instead of the received ones (latest values)."""

    __tablename__ = "corrected_study"

    study_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    attributes: Mapped[str] = mapped_column(Text)  # JSON: {keyword: value}
    version: Mapped[int] = mapped_column(Integer)


class InstanceOriginal(Base):
    """The blob an instance was received as, kept as sent while a corrected copy is served.

    Written on an instance's first correction; the instance row then names the
    corrected copy. Deleting the instance moves this blob to the purge too.
    """

    __tablename__ = "instance_original"

    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(256), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    applied: Mapped[str] = mapped_column(Text, default="")  # corrections in the served copy


class PatientMove(Base):
    """A patient merge or split: studies moved from one patient ID to another, undoable.

    ``kind`` is ``merge`` (every study of the source; the source's ID becomes an
    alias of the target, so PatientID=old still finds them through QIDO and
    C-FIND) or ``split`` (chosen studies, no alias). ``source`` keeps the
    source's demographics and ``added`` the identifiers the move gave the
    target, so that an undo restores both.
    """

    __tablename__ = "patient_move"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    source_issuer: Mapped[str] = mapped_column(String(64), default="")
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    target_issuer: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(Text, default="{}")  # JSON: name, birth_date, sex
    studies: Mapped[str] = mapped_column(Text, default="[]")  # JSON: study UIDs moved
    added: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [[value, issuer, type]]
    reason: Mapped[str] = mapped_column(Text, default="")
    moved_by: Mapped[str] = mapped_column(String(128), default="")
    moved_at: Mapped[datetime] = mapped_column(TZ)
    undone_by: Mapped[str] = mapped_column(String(128), default="")
    undone_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class Export(Base):
    """An export job's request and progress: ZIP or DICOMDIR media, optionally de-identified."""

    __tablename__ = "export"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    media: Mapped[str] = mapped_column(String(16))  # zip, dicomdir
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: deidentify, retain_* ...
    studies: Mapped[str] = mapped_column(Text, default="[]")  # JSON: study UIDs
    status: Mapped[str] = mapped_column(String(16), default="queued")  # running, done, failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(TZ)
    finished_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class CompressedInstance(Base):
    """An image stored compressed losslessly: what it was received as (issue 20 item 3).

    The pixels were proven identical before the original blob was removed; its hash,
    size and transfer syntax are kept here, so that integrity and provenance questions
    ("is this what the modality sent?") still have an answer.
    """

    __tablename__ = "compressed_instance"

    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    original_transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    original_sha256: Mapped[str] = mapped_column(String(64))
    original_size: Mapped[int] = mapped_column(BigInteger)
    compressed_size: Mapped[int] = mapped_column(BigInteger)
    compressed_at: Mapped[datetime] = mapped_column(TZ)


class ColdBlob(Base):
    """A blob moved to the cold storage tier (S3) because its study grew old (issue 20 item 3).

    Reads do not need it (the tiered store looks in both tiers); the move job and
    the storage page do: which old studies still have blobs in the hot tier, and
    how much lies in each. Keys carry their content's hash, so a row never
    names other bytes; a key replaced later (a compressed or corrected copy) is
    simply no longer referenced by an instance.
    """

    __tablename__ = "cold_blob"

    blob_key: Mapped[str] = mapped_column(String(256), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
