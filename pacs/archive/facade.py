"""The archive facade: the only way in for every door (DIMSE, DICOMweb, viewer, CLI).

Doors translate a request into a call here and the answer back; none of them
touches SQL or blobs directly. Holding the engine, the session factory and
the blob store in one object also gives tests one thing to build.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pacs import query
from pacs.archive import retrieve, usage
from pacs.archive.boundary import WriteWatch, guard_engine, probe_write
from pacs.archive.compression import JOB as COMPRESS_JOB
from pacs.archive.compression import Compression
from pacs.archive.corrections import Corrections, VersionView
from pacs.archive.errors import NotFound, StorageUnavailable, Unavailable
from pacs.archive.events import ChangeView, Events
from pacs.archive.exports import Exports
from pacs.archive.ingest import Ingestor, IngestResult, Origin, Spool
from pacs.archive.lifecycle import DeletionView, HoldView, Lifecycle, PurgeReport
from pacs.archive.patients import MoveView, PatientMoves, PatientRef
from pacs.archive.presence import require_archive
from pacs.archive.rejection import Rejections, RejectionView
from pacs.archive.retention import Retention
from pacs.archive.retrieve import StoredInstance
from pacs.archive.series import SeriesMoves
from pacs.archive.tiers import TIER_JOB, Tiers
from pacs.archive.usage import Usage
from pacs.audit import AuditTrail
from pacs.audit.checkpoint import Checkpoint
from pacs.audit.syslog import SyslogSender
from pacs.auth.keys import signing_key
from pacs.auth.principal import Kind, Principal, Role
from pacs.auth.service import Auth
from pacs.blobfile import seekable_blob
from pacs.config import RemoteAEs
from pacs.index.database import make_engine, make_session_factory
from pacs.index.migrate import check_at_head, upgrade
from pacs.index.models import Instance, Series, Study
from pacs.jobs import Jobs
from pacs.metrics import instruments
from pacs.query import Level, SearchResult
from pacs.reading import ReadingWorklist
from pacs.reports.service import Reports
from pacs.routing.service import Routing
from pacs.settings import Settings
from pacs.stats import Statistics
from pacs.stats.periods import utc_offset_minutes
from pacs.workflow.commitment import Commitments
from pacs.workflow.his_out import OrderStatusOut
from pacs.workflow.service import MATCH_JOB, Workflow
from storage import BlobNotFound, BlobStore, StorageError
from storage.filesystem import FileSystemStore
from storage.tiered import TieredStore

log = logging.getLogger(__name__)


class Archive:
    def __init__(self, settings: Settings, engine: Engine, store: BlobStore) -> None:
        self.settings = settings
        self.engine = engine
        guard_engine(engine)  # an outage raises IndexUnavailable on every path of this engine
        self.index_writes = WriteWatch()  # a database may read and refuse writes: /health says
        self.store = store
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        # The DICOM peers, from the database (runtime configuration, every node within
        # seconds of a change); the settings file's [[remote_aes]] only seeds them.
        self.remote_aes = RemoteAEs(self.sessions, settings)
        self.ingestor = Ingestor(
            self.sessions,
            store,
            duplicate_policy=settings.duplicate_policy,
            charset_fallback=self.remote_aes.charset_fallback_for,
        )
        syslog = None
        if settings.audit_syslog_host:
            syslog = SyslogSender(
                settings.audit_syslog_host,
                settings.audit_syslog_port,
                settings.audit_syslog_protocol,
            )
        self.audit = AuditTrail(
            self.sessions,
            syslog=syslog,
            source_id=settings.ae_title,
            spill_path=settings.data_dir / "audit-spill.jsonl",
            window=settings.audit_window_seconds,
            queue_size=settings.audit_queue_size,
            checkpoint=Checkpoint(
                settings.data_dir / "audit-checkpoint.json", signing_key(settings)
            ),
        )
        # Durable background work and the events that cause it. Handlers, periodic tasks
        # and study-stable subscribers are registered here, when the archive is built, so
        # that every process (`pacs serve --role all` or `--role jobs`) knows the same ones.
        self.jobs = Jobs(
            self.sessions,
            engine,
            threads=settings.job_threads,
            lease_s=settings.job_lease_seconds,
            poll_s=settings.job_poll_seconds,
        )
        self.events = Events(self.sessions, self.jobs.queue, settings.stable_study_seconds)
        self.jobs.every(
            "study-stable",
            min(5.0, max(0.1, settings.stable_study_seconds / 4)),
            self.events.check_stable,
        )
        self.jobs.every("prune-history", 3600.0, self.prune_history)
        purge_after = timedelta(hours=settings.delete_purge_after_hours)
        self.lifecycle = Lifecycle(self.sessions, store, self.audit, purge_after=purge_after)
        self.corrections = Corrections(self.sessions, store, self.audit)
        self.patient_moves = PatientMoves(self.sessions, self.corrections, self.audit)
        self.series_moves = SeriesMoves(self.sessions, self.corrections, self.audit)
        self.patient_moves.series_undo = self.series_moves.undo
        # Exports (ZIP, DICOMDIR, de-identified) are jobs writing into the data folder.
        self.exports = Exports(
            self.sessions,
            store,
            self.audit,
            self.jobs,
            settings.data_dir / "exports",
            lambda: signing_key(settings),
        )
        self.rejections = Rejections(
            self.sessions, self.lifecycle, self.audit, lambda fp, origin: self.ingest(fp, origin)
        )
        self.auth = Auth(self.sessions)  # accounts, tokens, share grants for the doors
        # Statistics and KPIs (GET /api/stats), counted in the hospital's calendar days.
        self.stats = Statistics(self.sessions, engine, utc_offset_minutes(settings.stats_timezone))
        # The triggers' deltas folded into the statistics' summary (pacs.stats.summary).
        self.jobs.every("fold-stats", 60.0, self.stats.fold)
        # Hospital workflow (HIS patients, orders): HL7 messages applied through it; demographic
        # changes reach stored studies as audited corrections; stable studies matched to orders.
        self.workflow = Workflow(
            self.sessions,
            self.jobs,
            self.correct,
            OrderStatusOut(
                self.sessions,
                self.jobs,
                host=settings.hl7_his_host,
                port=settings.hl7_his_port,
                application=settings.hl7_application,
                facility=settings.ae_title,
                message_type=settings.hl7_status_message,
            ),
            merge=self._merge_from_his,
        )
        self.events.on_study_stable(MATCH_JOB)
        # Storage commitment: verified and reported to the modality by a durable job.
        self.commitments = Commitments(
            self.sessions, store, self.remote_aes, self.jobs, settings.ae_title
        )
        # Routing rules and sends (C-STORE SCU, STOW-RS), queries and retrievals elsewhere.
        self.routing = Routing(
            self.sessions,
            self.jobs,
            self.events,
            self.remote_aes,
            settings,
            locate=self.locate,
            open_blob=self.open_blob,
            client_tls=self.remote_aes.client_tls,
            correct=self.correct,
        )
        # Reports: drafts, signing, SR and PDF into the study, the result out to the HIS.
        self.reports = Reports(self)
        # Reading: the radiologists' worklist, claims on studies, priors.
        self.reading = ReadingWorklist(
            self.sessions, self.audit, self.search, settings.reading_claim_minutes
        )
        # Instances that arrive in a corrected study are brought in line by a job.
        self.jobs.handle("reapply-corrections", self._reapply_job, backoff_s=60.0)
        self._scanned_corrections = False
        self.jobs.every("reapply-corrections", 60.0, self._queue_reapply)
        # Lossless compression by modality (off unless settings name modalities).
        self.compression = Compression(
            self.sessions,
            engine,
            store,
            settings.compression_modalities,
            settings.compression_after_days,
        )
        if settings.compression_modalities:
            self.jobs.handle(COMPRESS_JOB, self._compress_job, backoff_s=300.0)
            if settings.compression_after_days == 0:
                self.events.on_study_stable(COMPRESS_JOB)
            else:
                self.jobs.every("compress-due", 3600.0, self._queue_due_compression)
        # Storage tiers: studies older than storage_tier_after_days move to the cold tier.
        self.tiers = Tiers(self.sessions, store, settings.storage_tier_after_days)
        if self.tiers.enabled:
            self.jobs.handle(TIER_JOB, self._tier_job, backoff_s=300.0)
            self.jobs.every("tier-due", 3600.0, self._queue_due_tiers)
        # Retention rules: a purge list an administrator approves (holds respected).
        self.retention = Retention(self.sessions, settings.retention_years, self.delete)
        # The leader finds the deletions whose purge is due and queues one durable job each.
        self.jobs.handle("purge-deletion", self._purge_job, backoff_s=60.0)
        # `pacs check` asked for from the storage page: read-only (never --repair), recorded.
        self.jobs.handle(usage.CHECK_ACTION, self._integrity_job, backoff_s=60.0)
        self.jobs.every(
            "purge-deleted",
            max(5.0, min(300.0, purge_after.total_seconds() / 24)),
            self._queue_due_purges,
        )

    @classmethod
    def require_existing(cls, settings: Settings) -> None:
        """Return when ``settings`` name an existing archive; raise
        :class:`~pacs.archive.presence.ArchiveNotFound` when not (nothing is created)."""
        require_archive(settings)

    @classmethod
    def open(cls, settings: Settings, migrate: bool = True) -> Archive:
        """Connect to the index and the store named by ``settings``; bring the schema up to date.

        Creates the archive (folder, index schema) when there is none yet: callers that
        must not create one ask :meth:`require_existing` first.

        With ``settings.migrate_on_start`` off the schema is only checked: raises
        :class:`~pacs.index.migrate.SchemaNotAtHead` unless ``pacs db upgrade``
        brought it to this release's head. ``migrate=False`` skips both (a
        process whose parent already did either).
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.database_url, busy_timeout=settings.index_busy_timeout)
        if migrate:
            try:
                if settings.migrate_on_start:
                    upgrade(engine)
                else:
                    check_at_head(engine)
            except BaseException:
                engine.dispose()
                raise
        archive = cls(settings, engine, settings.open_store())
        if migrate:
            try:
                archive.remote_aes.seed_from_settings()
            except Exception:
                archive.close()
                raise
        return archive

    def close(self) -> None:
        self.routing.close()
        self.audit.close()
        self.engine.dispose()

    def ingest(
        self,
        fp: BinaryIO,
        origin: Origin,
        *,
        expect_sop_class_uid: str = "",
        expect_sop_instance_uid: str = "",
        expect_study_uid: str = "",
        spool: Spool | None = None,
    ) -> IngestResult:
        """Store one DICOM object (a seekable Part 10 or bare dataset stream).

        Returns what happened (:class:`IngestResult`, whose ``outcome`` tells a
        duplicate or a kept conflict from a new object). ``expect_*`` are the
        identities the request announced (the C-STORE command's SOP Class and
        Instance, the STOW-RS URL's or a grant's study): an object that
        contradicts one is refused before anything is written. Raises
        :class:`~pacs.archive.ingest.InvalidObject` (bad or contradicting object,
        ``mismatch`` set for a contradiction), :class:`~pacs.archive.ingest.Rejected`
        (refused by the duplicate policy) or :class:`~pacs.archive.ingest.Unavailable`
        (index or store down: retry later).
        """
        started = time.perf_counter()
        try:
            result = self.ingestor.ingest(
                fp,
                origin,
                expect_sop_class_uid=expect_sop_class_uid,
                expect_sop_instance_uid=expect_sop_instance_uid,
                expect_study_uid=expect_study_uid,
                spool=spool,
            )
        except Unavailable as exc:
            self.index_writes.failed(exc)
            raise
        self.index_writes.succeeded()
        instruments().stored(origin.door, result.size, time.perf_counter() - started)
        self.events.instance_stored(result)
        return result

    # -- lifecycle: delete, legal hold, purge ---------------------------------------------

    def delete(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
        *,
        reason: str,
    ) -> DeletionView:
        """Soft-delete a study, a series of it or one instance, for ``reason``; audited.

        From the return on, no door finds or retrieves it; its blobs are purged
        ``delete_purge_after_hours`` later (see :mod:`pacs.archive.lifecycle`).
        Returns the deletion record. Raises :class:`~pacs.archive.errors.NotFound`
        (unknown or already deleted), :class:`~pacs.archive.errors.LegalHoldActive`
        (the study is held; the refusal is audited) and SQLAlchemy's errors when
        the index is unreachable.
        """
        return self.lifecycle.delete(
            principal, study_uid, series_uid, sop_instance_uid, reason=reason
        )

    def reject(
        self,
        principal: Principal,
        study_uid: str,
        *,
        code: str,
        series_uid: str | None = None,
        sop_instance_uids: list[str] | None = None,
        reason: str = "",
    ) -> RejectionView:
        """IOCM rejection of a study, a series or instances of a series, for a coded reason.

        The objects are deleted (hidden from every door, purged after the delay),
        and a Key Object Selection rejection note is stored in the study (see
        :mod:`pacs.archive.rejection`). Raises
        :class:`~pacs.archive.rejection.InvalidRejection` (unknown code),
        :class:`~pacs.archive.errors.NotFound` and
        :class:`~pacs.archive.errors.LegalHoldActive` (audited).
        """
        return self.rejections.reject(
            principal,
            study_uid,
            code=code,
            series_uid=series_uid,
            sop_instance_uids=sop_instance_uids,
            reason=reason,
        )

    def deletions(self, study_uid: str | None = None, limit: int = 100) -> list[DeletionView]:
        """Recorded deletes, newest first, optionally of one study (purged ones included)."""
        return self.lifecycle.deletions(study_uid, limit)

    def purge_due(self, now: datetime | None = None) -> PurgeReport:
        """Remove the blobs of every deletion whose delay has passed (``now``: for tests).

        Returns counts; a blob referenced again by a live instance is kept.
        Raises :class:`~pacs.archive.errors.StorageError` when the store fails
        (what was not purged stays due).
        """
        return self.lifecycle.purge_due(now)

    def set_legal_hold(self, principal: Principal, study_uid: str, reason: str) -> HoldView:
        """Put a study under a legal hold (deletes refused until released); audited.

        Returns the hold; raises :class:`~pacs.archive.errors.NotFound` for an unknown study.
        """
        return self.lifecycle.hold(principal, study_uid, reason)

    def release_legal_hold(self, principal: Principal, study_uid: str, reason: str = "") -> None:
        """Release a study's legal hold; audited. Raises :class:`~pacs.archive.errors.NotFound`
        when the study has no hold."""
        self.lifecycle.release(principal, study_uid, reason)

    def legal_hold(self, study_uid: str) -> HoldView | None:
        """The study's legal hold, or ``None``."""
        return self.lifecycle.hold_of(study_uid)

    # -- lifecycle: corrections -----------------------------------------------------------

    def correct(
        self, principal: Principal, study_uid: str, values: dict[str, str], reason: str
    ) -> list[VersionView]:
        """Correct patient or study attributes of a study (keyword -> new value), for ``reason``.

        Updates the index and the stored DICOM JSON, records an audited version
        per affected study (patient attributes are the patient's, shared by all
        of that patient's studies) and then serves corrected copies of the
        objects, keeping them as received (see :mod:`pacs.archive.corrections`).
        Returns the versions recorded, this study's first (none when nothing
        changed). Raises :class:`~pacs.archive.errors.NotFound` (unknown study),
        :class:`~pacs.archive.errors.InvalidCorrection` (attribute not
        correctable, bad value, no reason) and
        :class:`~pacs.archive.errors.StorageError` (the store failed while
        writing copies: the index is corrected, ``reapply_corrections`` finishes).
        """
        return self.corrections.correct(principal, study_uid, values, reason)

    def correction_versions(self, study_uid: str) -> list[VersionView]:
        """Every correction of a study, oldest first (empty: never corrected).

        Raises :class:`~pacs.archive.errors.NotFound` for a study neither stored nor corrected.
        """
        return self.corrections.versions(study_uid)

    def corrected_attributes(self, study_uid: str) -> dict[str, str]:
        """The corrected values a study presents instead of the received ones (keyword -> value)."""
        return self.corrections.attributes_of(study_uid)

    def reapply_corrections(self, study_uid: str) -> int:
        """Bring every instance of a corrected study (late arrivals too) to its corrected values.

        Returns how many objects were rewritten; raises :class:`~pacs.archive.errors.StorageError`.
        """
        return self.corrections.reapply(study_uid)

    # -- lifecycle: patient merge and split ---------------------------------------------

    def merge_patients(
        self,
        principal: Principal,
        source: PatientRef,
        target: PatientRef,
        reason: str,
        values: dict[str, str] | None = None,
    ) -> MoveView:
        """Move every study of ``source`` to ``target`` as audited corrections; ``source``'s ID
        stays findable (QIDO, C-FIND) as an alias of ``target``. See :mod:`pacs.archive.patients`.

        Raises :class:`~pacs.archive.errors.NotFound` (no such source) and
        :class:`~pacs.archive.errors.InvalidCorrection` (same patient, other issuer, no reason).
        """
        return self.patient_moves.merge(principal, source, target, reason, values)

    def split_patient(
        self,
        principal: Principal,
        source: PatientRef,
        study_uids: list[str],
        target: PatientRef,
        reason: str,
        values: dict[str, str] | None = None,
    ) -> MoveView:
        """Move some studies of ``source`` to ``target`` (made with ``values`` when new); raises
        like :meth:`merge_patients`, NotFound too for a study not of ``source``."""
        return self.patient_moves.split(principal, source, study_uids, target, reason, values)

    def move_series(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str,
        reason: str,
        *,
        target_study_uid: str | None = None,
        patient: PatientRef | None = None,
    ) -> MoveView:
        """Move a series to another study, or to a new study of ``patient``; audited, versioned,
        undone with :meth:`undo_patient_move` (see :mod:`pacs.archive.series`). Raises
        :class:`~pacs.archive.errors.NotFound` and
        :class:`~pacs.archive.errors.InvalidCorrection`."""
        return self.series_moves.move(
            principal,
            study_uid,
            series_uid,
            reason,
            target_study_uid=target_study_uid,
            patient=patient,
        )

    def undo_patient_move(self, principal: Principal, move_id: int, reason: str) -> MoveView:
        """Undo a merge or split: the studies go back, the alias goes; audited."""
        return self.patient_moves.undo(principal, move_id, reason)

    def patient_moves_of(self, patient_id: str | None = None, limit: int = 100) -> list[MoveView]:
        """Recorded merges and splits, newest first."""
        return self.patient_moves.moves(patient_id, limit)

    def _merge_from_his(
        self,
        principal: Principal,
        prior_id: str,
        issuer: str,
        survivor_id: str,
        values: dict[str, str],
        reason: str,
    ) -> None:
        """An ADT^A40 on stored studies: a merge, for the issuer the index knows the prior ID
        under (the HIS's, or none when the modality sent no issuer). Idempotent."""
        for candidate in dict.fromkeys((issuer, "")):
            try:
                self.patient_moves.merge(
                    principal,
                    PatientRef(prior_id, candidate),
                    PatientRef(survivor_id, candidate),
                    reason,
                    values,
                )
            except NotFound:
                continue

    def _queue_reapply(self) -> None:
        # Late arrivals touch their study within the last hour (the leader scans each minute);
        # the first scan of a process looks at every corrected study (copies a crash left).
        since = datetime.now(UTC) - timedelta(hours=1) if self._scanned_corrections else None
        self._scanned_corrections = True
        for study_uid, newest in self.corrections.pending(since):
            self.jobs.enqueue(
                "reapply-corrections",
                {"study_uid": study_uid},
                dedup_key=f"reapply:{study_uid}:{newest}",
            )

    def _reapply_job(self, payload: dict[str, Any]) -> None:
        self.corrections.reapply(str(payload["study_uid"]))

    def _compress_job(self, payload: dict[str, Any]) -> None:
        self.compression.compress_study(str(payload["study_uid"]))

    def _queue_due_compression(self) -> None:
        for study_uid in self.compression.due_studies():
            # Keyed by the hour: a study still partly uncompressed (a failure) comes back.
            hour = datetime.now(UTC).strftime("%Y%m%d%H")
            self.jobs.enqueue(
                COMPRESS_JOB, {"study_uid": study_uid}, dedup_key=f"compress:{study_uid}:{hour}"
            )

    def _queue_due_tiers(self) -> None:
        for study_uid in self.tiers.due_studies():
            # Keyed by the hour: a study still partly hot (a failure, a late arrival) comes back.
            hour = datetime.now(UTC).strftime("%Y%m%d%H")
            self.jobs.enqueue(
                TIER_JOB, {"study_uid": study_uid}, dedup_key=f"tier:{study_uid}:{hour}"
            )

    def _tier_job(self, payload: dict[str, Any]) -> None:
        self.tiers.move_study(str(payload["study_uid"]))

    def _queue_due_purges(self) -> None:
        for deletion_id in self.lifecycle.due():
            self.jobs.enqueue(
                "purge-deletion", {"deletion": deletion_id}, dedup_key=f"purge:{deletion_id}"
            )

    def _purge_job(self, payload: dict[str, Any]) -> None:
        self.lifecycle.purge(int(payload["deletion"]))

    def changes(self, since: int = 0, limit: int = 100) -> list[ChangeView]:
        """The change feed after sequence number ``since``, oldest first (new study, new
        series, stable study): what an integration polls to learn what arrived."""
        return self.events.changes(since, limit)

    def last_change(self) -> int:
        """The newest change's sequence number (0 when none): a list polls it to refresh."""
        return self.events.last_change()

    def prune_history(self, now: datetime | None = None) -> tuple[int, int]:
        """Drop finished jobs and change rows older than ``history_days`` (a periodic task on
        the leader); how many of each."""
        before = (now or datetime.now(UTC)) - timedelta(days=self.settings.history_days)
        return self.jobs.queue.prune_finished(before), self.events.prune(before)

    def locate(
        self,
        study_uid: str | None = None,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> list[StoredInstance]:
        """Stored instances of a study, series or instance, in reading order (index only).

        Returns an empty list when nothing matches; raises SQLAlchemy's errors
        when the index is unreachable.
        """
        return list(retrieve.locate(self.sessions, study_uid, series_uid, sop_instance_uid))

    def locate_many(
        self,
        *,
        patient_ids: Sequence[str] = (),
        study_uids: Sequence[str] = (),
        series_uids: Sequence[str] = (),
        sop_instance_uids: Sequence[str] = (),
    ) -> list[StoredInstance]:
        """Stored instances matching every non-empty UID list (C-MOVE/C-GET identifiers).

        Returns them study by study in reading order; an empty list when all
        lists are empty (an empty retrieve request never means "everything").
        Raises SQLAlchemy's errors when the index is unreachable.
        """
        return retrieve.locate_many(
            self.sessions,
            patient_ids=patient_ids,
            study_uids=study_uids,
            series_uids=series_uids,
            sop_instance_uids=sop_instance_uids,
        )

    def instance_refs(self, study_uids: Sequence[str]) -> list[retrieve.InstanceRef]:
        """Series, SOP Instance and SOP Class UIDs and number of each instance of the
        studies, in reading order (index only; empty for no UIDs)."""
        return retrieve.instance_refs(self.sessions, study_uids)

    def metadata(
        self, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
    ) -> list[tuple[str, str]]:
        """Stored DICOM JSON of each instance (no bulk data), without opening a blob."""
        return retrieve.instance_metadata(self.sessions, study_uid, series_uid, sop_instance_uid)

    def open_blob(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A stream over a stored object (or a byte range of it), to be closed by the caller.

        Raises :class:`~pacs.archive.errors.BlobNotFound` when the index names an object
        the store lacks, :class:`~pacs.archive.errors.StorageUnavailable` (a
        ``StorageError``) when the store cannot be read now.
        """
        try:
            return self.store.open(key, start, end)
        except BlobNotFound:
            raise
        except (StorageError, OSError) as exc:
            raise StorageUnavailable(f"storage unavailable: {exc}") from exc

    def open_seekable(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A context manager giving a seekable stream over a stored object, whatever the store.

        Parsing and decoding seek back and forth: a filesystem blob is its file,
        an S3 object is spooled (in memory while small). Raises like
        :meth:`open_blob`.
        """
        return _translated_store_errors(seekable_blob(self.store, key))

    @property
    def links_spool_files(self) -> bool:
        """Whether a door's spool file becomes the stored blob by a hard link (filesystem store).

        Such a file is not read again soon, so its writer may bypass the page cache.
        """
        store = self.store.hot if isinstance(self.store, TieredStore) else self.store
        return isinstance(store, FileSystemStore)

    def search(
        self,
        level: Level,
        identifier: Dataset,
        *,
        fuzzy: bool = False,
        limit: int | None = None,
        offset: int = 0,
        study_uid_scope: str | None = None,
        include_all: bool = False,
        ignore_unsupported: bool = False,
        combined_datetime: bool = True,
        sort: list[tuple[str, bool]] | None = None,
        count: bool = False,
    ) -> SearchResult:
        """Match ``identifier`` (PS3.4 C.2.2.2) at ``level``: the engine of C-FIND and QIDO.

        Raises :class:`~pacs.query.QueryError` for a malformed value, and for a key
        that cannot be matched unless ``ignore_unsupported`` (then it is named in
        ``SearchResult.ignored``); :class:`IndexUnavailable` when the index is down.

        ``combined_datetime``: a StudyDate range with a StudyTime is one date-time
        range (PS3.4 C.2.2.2.5); C-FIND asks for it only when the SCU negotiated it.
        ``sort`` and ``count``: a study list sorted and paged on the server, with its total.
        """
        return query.search(
            self.sessions,
            level,
            identifier,
            fuzzy=fuzzy,
            limit=limit,
            offset=offset,
            study_uid_scope=study_uid_scope,
            include_all=include_all,
            ignore_unsupported=ignore_unsupported,
            combined_datetime=combined_datetime,
            sort=sort,
            count=count,
        )

    def storage_usage(self) -> Usage:
        """Instances and bytes per store and per modality and month, free space, and the
        last integrity check (for the storage page)."""
        cold = self.tiers.cold_usage() if self.tiers.enabled else (0, 0)
        return usage.usage(self.sessions, self.store, self.settings.data_dir, self.audit, cold)

    def request_integrity_check(self, principal: Principal, *, quick: bool = True) -> int | None:
        """Queue a read-only ``pacs check`` (never a repair); its job id. Audited."""
        job_id = self.jobs.enqueue(
            usage.CHECK_ACTION, {"by": principal.name, "quick": quick}, max_attempts=1
        )
        mode = "quick" if quick else "full"
        # Not "integrity-check-...": the storage page reads the newest integrity-check* record.
        self.audit.record(principal, "check-request", detail=f"{mode}, job {job_id}")
        return job_id

    def _integrity_job(self, payload: dict[str, Any]) -> None:
        from pacs.reconcile import check  # reconcile builds on this facade

        report = check(self, repair=False, quick=bool(payload.get("quick", True)))
        by = Principal(Kind.USER, str(payload.get("by", ""))[:64], Role.ADMIN, "job")
        mode = {"quick": bool(payload.get("quick", True)), "repair": False}
        self.record_integrity_check(by, {**report.as_dict(), **mode})

    def record_integrity_check(self, principal: Principal, report: dict[str, Any]) -> None:
        """Keep a ``pacs check`` result in the audit trail, where the storage page reads it."""
        consistent = bool(report.get("consistent"))
        outcome = "success" if consistent else "failure: NOT consistent"
        self.audit.record(
            principal, usage.CHECK_ACTION, outcome, detail=usage.check_summary(report)
        )

    def counts(self) -> dict[str, int]:
        """How many studies, series and instances the index holds."""
        with self.sessions() as session:
            return {
                name: session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in (("studies", Study), ("series", Series), ("instances", Instance))
            }

    def health(self) -> dict[str, str]:
        """'ok' or the reason, for the index, the store and the audit trail's writer.

        Used by /health and the status page; ``audit`` says when records wait
        for an unwritable database, sit in the spill file, or were lost.
        """
        status = {"index": "ok", "storage": "ok", "audit": self.audit.status()}
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            status["index"] = f"unavailable: {exc.__class__.__name__}"
        else:
            if self.index_writes.status() != "ok":  # refused writes: does it take one now?
                try:
                    probe_write(self.engine)
                    self.index_writes.succeeded()
                except SQLAlchemyError as exc:
                    self.index_writes.failed(exc)
            status["index"] = self.index_writes.status()
        try:
            self.store.check()
        except StorageError as exc:
            status["storage"] = f"unavailable: {exc}"
        return status


@contextlib.contextmanager
def _translated_store_errors(opened: AbstractContextManager[BinaryIO]) -> Iterator[BinaryIO]:
    """``opened``, with the store's failures raised as :class:`StorageUnavailable`."""
    try:
        with opened as stream:
            yield stream
    except BlobNotFound:
        raise
    except StorageError as exc:
        if isinstance(exc, StorageUnavailable):
            raise
        raise StorageUnavailable(f"storage unavailable: {exc}") from exc
