"""The one settings object: safe defaults, a TOML file, then ``PACS_*`` variables.

Precedence, highest first: keyword arguments (tests), environment variables,
the TOML file named by ``PACS_CONFIG`` (or ``./pacs.toml`` when present),
defaults. Every default runs the embedded archive: SQLite and files below
``./data``, nothing else to install.

Relative paths in the TOML file are relative to the file's own folder, not to
wherever a command happens to run: ``pacs import`` from the home folder with
``PACS_CONFIG=/opt/pacs/pacs.toml`` works on the same ``data_dir`` as ``pacs
serve`` started in ``/opt/pacs``. The data folder is always made absolute, so
every message can say exactly which folder it means.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class DuplicatePolicy(StrEnum):
    """What to do when a different object arrives under a SOP Instance UID we hold."""

    KEEP = "keep"  # keep the original, refuse the newcomer with a warning status
    REPLACE = "replace"  # keep the newcomer (audited), drop the original
    REJECT = "reject"  # refuse the newcomer with a failure status


class RemoteAE(BaseModel):
    """A DICOM peer from the settings file: it seeds the database's table on start
    (pacs.config), where administrators then change it at run time."""

    ae_title: str
    host: str = "127.0.0.1"
    port: int = 104
    charset_fallback: str | None = None
    services: list[str] = Field(default_factory=lambda: ["echo", "store", "find", "move", "get"])
    # Character set of our C-FIND responses to it: "utf8" (ISO_IR 192), "ascii" (accents
    # folded, for old consoles) or "latin1" (ISO_IR 100, unencodable letters approximated).
    charset_profile: Literal["utf8", "ascii", "latin1"] = "utf8"
    tls_required: bool = False  # it must call over DICOM TLS
    tls_identity: str | None = None  # the name its client certificate must carry (CN or SAN)
    description: str = ""
    enabled: bool = True


# Settings that name a file or folder: relative in the TOML file means relative to its folder.
PATH_SETTINGS = (
    "data_dir",
    "spool_dir",
    "ohif_dir",
    "tls_cert_file",
    "tls_key_file",
    "dicom_tls_cert_file",
    "dicom_tls_key_file",
    "dicom_tls_ca_file",
)


class _TomlFile(TomlConfigSettingsSource):
    """The TOML source, with relative paths anchored at the file's folder."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        folder = Path(str(file_path)).resolve().parent
        for name in PATH_SETTINGS:
            value = data.get(name)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                data[name] = str(folder / value)
        return data


def config_file() -> Path | None:
    """The settings file in use: the one ``PACS_CONFIG`` names, else ``./pacs.toml`` if any."""
    named = os.environ.get("PACS_CONFIG")
    if named:
        return Path(named)
    local = Path("pacs.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PACS_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite file in data_dir
    # SQLite: how long a write waits for another connection's (or process's) write lock
    # before the request answers 503 / 0xA700; a request never hangs 30 s on a lock.
    index_busy_timeout: float = Field(default=5.0, ge=0)
    storage_url: str = ""  # empty: folder 'blobs' in data_dir
    storage_fsync: bool = True
    # Storage tiers: studies first received more than storage_tier_after_days ago move from
    # storage_url (the hot tier, a filesystem) to this S3 URL (s3://bucket/prefix, the s3_*
    # settings below); reads find a blob in either. Empty or 0 days: one tier.
    storage_tier_url: str = ""
    storage_tier_after_days: float = Field(default=0.0, ge=0)

    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str | None = None
    s3_create_bucket: bool = True

    ae_title: str = "PACS"
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    max_associations: int = 20  # per DIMSE process
    # Processes answering DIMSE on the one port. Python runs one thread at a time per
    # process, so with several modalities sending at once N processes on N cores store
    # about N times as fast (~110 MB each). 0: one per CPU, at most 4. 1: the main only.
    dicom_processes: int = Field(default=0, ge=0, le=64)
    acse_timeout: float = 30.0
    # ARTIM (PS3.8 9.1.5) for the connections we accept: the time to send the A-ASSOCIATE-RQ,
    # and to finish any PDU once begun; then the connection is closed (pacs.dimse.slots).
    dicom_artim_timeout: float = Field(default=10.0, gt=0)
    # Connections one peer address may hold at once (per DIMSE process); more are closed.
    dicom_max_associations_per_address: int = Field(default=8, ge=1)
    # Of max_associations, how many only registered peers (title at its address) may take.
    dicom_reserved_associations: int = Field(default=4, ge=0)
    dimse_timeout: float = 60.0
    network_timeout: float = 120.0
    # Largest PDU we accept. 0 (unlimited) makes DCMTK senders fall back to 16 KiB PDUs;
    # 128 KiB (DCMTK's own ceiling) cut per-instance receive time by a fifth here.
    maximum_pdu_size: int = 131072
    # Seeds the database's list of calling AEs allowed to associate (pacs.config); empty: any.
    allowed_calling_aes: list[str] = Field(default_factory=list)
    # Refuse associations from AEs neither registered (title at its address) nor allowed.
    dicom_strict: bool = False
    # DICOM TLS on a second port: certificate and key (PEM); a CA file requires client certs.
    dicom_tls_port: int | None = None
    dicom_tls_cert_file: Path | None = None
    dicom_tls_key_file: Path | None = None
    dicom_tls_ca_file: Path | None = None
    spool_dir: Path | None = None  # where DIMSE spools incoming datasets; default data_dir/spool
    # C-MOVE/C-GET send stored bytes as they are; an instance whose syntax the peer did not
    # accept is converted in memory, up to this size (stored and decoded): a CT or MR
    # series' images, a 1,000-frame US clip is refused instead.
    retrieve_convert_max_bytes: int = Field(default=64 << 20, ge=0)
    # The DIMSE fast path (pacs.dimse.fastpath): shims over pynetdicom's internals, used only
    # with the pynetdicom release they were written for; off: stock pynetdicom throughout.
    dimse_fastpath: bool = True
    # Private storage SOP class UIDs accepted over DIMSE besides every standard and retired one.
    extra_storage_sop_classes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Bring the index schema to head when the archive opens; false: a deploy runs
    # `pacs db upgrade` once and every process refuses to start on an older schema.
    migrate_on_start: bool = True

    # HL7 v2 (MLLP) door for the HIS: loopback by default like HTTP; port 0 turns it off.
    hl7_host: str = "127.0.0.1"
    hl7_port: int = Field(default=2575, ge=0, le=65535)
    # Sending applications allowed ("APP" or "APP^FACILITY", MSH-3/MSH-4); empty: any.
    hl7_allowed_senders: list[str] = Field(default_factory=list)
    hl7_max_message_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    hl7_default_charset: str = "UNICODE UTF-8"  # when MSH-18 is empty
    hl7_citizen_id_type: str = "NI"  # the PID-3 identifier type that is the citizen ID
    # The PID-3 identifier type of the hospital's PatientID (e.g. PI, MR); empty: the first
    # identifier that is not the citizen ID.
    hl7_patient_id_type: str = ""
    # Where each order value is read from, overriding hl7v2.fields.DEFAULT_FIELDS per target,
    # e.g. {"accession_number": ["OBR-3"], "modality": ["ZDS-1", "OBR-24"]}; checked at start.
    hl7_fields: dict[str, list[str]] = Field(default_factory=dict)
    # How order status goes back to the HIS: ORM^O01 (ORC-1 SC) or OMI^O23 (ORC-1 SC with IPC).
    hl7_status_message: Literal["ORM", "OMI"] = "ORM"
    hl7_application: str = "PACS"  # our MSH-3 in ACKs
    # Where order status changes go back (ORM^O01 over MLLP, as jobs); empty or 0: not sent.
    hl7_his_host: str = ""
    hl7_his_port: int = Field(default=0, ge=0, le=65535)
    # MLLP over TLS: certificate and key (PEM); a CA file requires client certificates.
    hl7_tls_cert_file: Path | None = None
    hl7_tls_key_file: Path | None = None
    hl7_tls_ca_file: Path | None = None
    # Modality Worklist: a calling AE sees only the steps scheduled for its own AE title.
    worklist_calling_ae_only: bool = False

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Processes answering HTTP on the one port (app.workers), for the same reason as
    # dicom_processes: four STOW clients or viewers on one process get no more done than
    # one. 0: one per CPU, at most 4. 1: the main process only.
    http_processes: int = Field(default=0, ge=0, le=64)
    ohif_dir: Path | None = None  # where `make ohif` installs OHIF; default data_dir/ohif
    # HTTPS: certificate and key (PEM). Without them the HTTP server listens only on
    # loopback, unless a TLS-terminating reverse proxy in front is declared.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    behind_tls_proxy: bool = False
    # DICOMweb: the URL clients reach us under (BulkDataURI, RetrieveURL); empty: derived per
    # request from Host, or from Forwarded/X-Forwarded-* sent by a proxy listed below.
    public_base_url: str = ""
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # TCP load balancers in front of the DICOM port (addresses or networks) that begin every
    # connection with a PROXY protocol v1 line naming the caller (nginx stream
    # `proxy_protocol on`, HAProxy `send-proxy`); empty: none. See pacs/dimse/proxy_protocol.
    dicom_proxy_protocol_from: list[str] = Field(default_factory=list)
    # CORS: "*" lets any web origin call us with a token but never with our cookies;
    # explicit origins are echoed and may also use the session cookie (credentials).
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    stow_max_bytes: int = 2 * 1024**3  # largest STOW-RS request body
    # WADO-RS Accept without transfer-syntax: PS3.18 means Explicit VR Little Endian (True);
    # dicomweb-client and many viewers send none and expect the stored bytes (False, default).
    wado_strict_default_syntax: bool = False
    # FHIR door (/fhir): the identifier system of the citizen ID (CCCD, TT 13/2025), which
    # OtherPatientIDsSequence items carry with this IssuerOfPatientID; the system of a
    # PatientID without issuer; the zone of StudyDate/StudyTime (FHIR needs an offset).
    fhir_citizen_id_issuer: str = "CCCD"
    fhir_citizen_id_system: str = "http://fhir.hl7.org.vn/core/sid/cccd"
    fhir_patient_id_system: str = "urn:pacs:patient-id"
    fhir_timezone: str = "Asia/Ho_Chi_Minh"
    # The profiles the FHIR resources declare (meta.profile, CapabilityStatement
    # supportedProfile): HL7 Vietnam's VN Core IG (fhir.hl7.org.vn/core, a draft; the Ministry's
    # CI build at fhir.ehealth.gov.vn/core names its own); "" declares none. The citizen ID's
    # identifier type also carries this coding (system|code) beside HL7 v2-0203 NI.
    fhir_profile_patient: str = "http://fhir.hl7.org.vn/core/StructureDefinition/vn-core-patient"
    fhir_profile_imaging_study: str = (
        "http://fhir.hl7.org.vn/core/StructureDefinition/vn-core-imaging-study"
    )
    fhir_profile_diagnostic_report: str = (
        "http://fhir.hl7.org.vn/core/StructureDefinition/vn-core-diagnostic-report-imaging"
    )
    fhir_citizen_id_type: str = "http://fhir.hl7.org.vn/core/CodeSystem/vn-identifier-type-cs|CCCD"
    # Life of a token a SMART client app gets from POST /fhir/auth/token (client credentials).
    fhir_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # The calendar statistics count days in (GET /api/stats): the hospital's zone.
    stats_timezone: str = "Asia/Ho_Chi_Minh"
    # Lossless compression (JPEG-LS) of uncompressed images of these modalities, e.g.
    # ["CT", "CR", "US"] (empty: off), once a study is stable and this many days old.
    compression_modalities: list[str] = Field(default_factory=list)
    compression_after_days: float = Field(default=0.0, ge=0)
    # Years a study is kept, by modality ("*": any other), e.g. {"CR": 10, "*": 20}; empty:
    # keep everything. Studies past it are only proposed (GET /api/retention/candidates).
    retention_years: dict[str, float] = Field(default_factory=dict)

    # Reports (issue 17): the result slip's header, whether a second radiologist approves a
    # signed report before it is final, the TrueType font with Vietnamese (default: DejaVu
    # Sans from Debian fonts-dejavu-core), how long the slip's QR share link lives, and the
    # PKCS#11 module of signing tokens or an HSM the server reaches (e.g. SoftHSM2's).
    report_hospital_name: str = ""
    report_hospital_address: str = ""
    report_second_reader: bool = False
    report_font: Path | None = None
    report_share_days: float = 30.0
    pkcs11_library: str = ""

    duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP
    default_charset: str = "ISO_IR 100"  # assumed when a dataset declares no character set
    # Seeds the database's table of DICOM peers on start (titles it lacks); the database
    # is the truth after that: `pacs ae`, /api/aes (see pacs.config).
    remote_aes: list[RemoteAE] = Field(default_factory=list)
    # C-FIND has no fuzzymatching flag: match PatientName words in any order, as prefixes.
    cfind_fuzzy_names: bool = False

    # Background jobs (pacs/jobs): runner threads per `pacs serve` process (0: none here),
    # how long a claimed job stays leased without a heartbeat (a killed worker's job runs
    # again after this), and how often an idle runner looks for due jobs on other nodes.
    job_threads: int = Field(default=2, ge=0, le=64)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_poll_seconds: float = Field(default=1.0, gt=0)
    # A study is "stable" (its subscribers' jobs are queued) after this long without a new
    # instance; Orthanc's StableAge. A late instance makes it stable again later.
    stable_study_seconds: float = Field(default=60.0, gt=0)
    # Routing and sending (pacs/routing): a destination that is down is retried after
    # route_backoff_seconds, doubling up to route_backoff_cap_seconds, route_max_attempts
    # times per send job before it is a dead letter (other destinations are not held up);
    # route_associations: associations opened at once to send one study to a remote AE.
    route_backoff_seconds: float = Field(default=10.0, gt=0)
    route_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    route_max_attempts: int = Field(default=20, ge=1, le=1000)
    route_associations: int = Field(default=1, ge=1, le=16)
    # History kept: finished (done, cancelled) jobs and change-feed rows older than this are
    # pruned by the leader; dead letters stay until an administrator retries or cancels them.
    history_days: float = Field(default=30.0, gt=0)
    # A deleted study, series or instance vanishes from every door at once; its index
    # record and its blobs are purged this long afterwards (a window to notice a mistake).
    delete_purge_after_hours: float = Field(default=24.0, ge=0)
    # A radiologist's claim on a study (reading worklist) lapses after this long unless
    # renewed, so a reader who walked away does not hold the study.
    reading_claim_minutes: float = Field(default=60.0, gt=0, le=24 * 60)

    log_level: str = "INFO"
    # First start only: the first admin's password (else a random one is printed once).
    admin_password: SecretStr | None = None
    # Signs session cookies and share links; default: a random key kept in data_dir/secret.key.
    # Every node of a cluster must share it.
    secret_key: SecretStr | None = None
    session_hours: float = 12.0
    admin_totp_required: bool = False  # admins must enrol a TOTP second factor to log in
    login_attempts_per_minute: int = 10  # failed logins per client address
    share_pin_failures_per_minute: int = 3  # wrong share PINs per link and per client address
    share_default_days: int = 30
    share_max_days: int = 365
    # Single sign-on (OpenID Connect, e.g. Keycloak): off unless an issuer is set.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile email"
    oidc_username_claim: str = "preferred_username"
    # Where the IdP puts roles: Keycloak realm roles; "roles" or "groups" elsewhere.
    oidc_role_claim: str = "realm_access.roles"
    oidc_role_map: dict[str, str] = Field(default_factory=dict)  # IdP role -> ours
    # Audit messages (DICOM PS3.15 XML) also go to this syslog collector when set.
    audit_syslog_host: str | None = None
    audit_syslog_port: int = 514
    audit_syslog_protocol: str = "udp"  # or "tcp"
    # WADO/QIDO accesses by one principal to one study within this many seconds are one record.
    audit_window_seconds: float = Field(default=5.0, ge=0, le=300)
    # Records waiting for the audit writer; beyond it a request waits 1 s, then spills to disk.
    audit_queue_size: int = Field(default=10_000, ge=100)

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 16 or "\\" in value:
            raise ValueError("AE title must be 1-16 characters without backslash")
        return value

    @field_validator("stats_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        """A zone the statistics can count days in, refused at start rather than at the
        first report."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Ho_Chi_Minh)") from exc
        return value

    @field_validator("extra_storage_sop_classes", mode="before")
    @classmethod
    def _uid_list(cls, value: Any) -> Any:
        """From ``PACS_EXTRA_STORAGE_SOP_CLASSES``: comma- or space-separated, or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [uid for uid in text.replace(",", " ").split() if uid]
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"
        if not self.storage_url:
            self.storage_url = f"file://{(self.data_dir / 'blobs').resolve()}"
        if self.spool_dir is None:
            self.spool_dir = self.data_dir / "spool"
        if self.ohif_dir is None:
            self.ohif_dir = self.data_dir / "ohif"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = config_file()
        if toml is not None:
            if not toml.is_file():
                raise FileNotFoundError(f"PACS_CONFIG names {toml}, which does not exist")
            sources.append(_TomlFile(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def storage_tiered(self) -> bool:
        return bool(self.storage_tier_url) and self.storage_tier_after_days > 0

    def open_store(self) -> Any:
        from storage.tiered import TieredStore

        hot = self._open_store(self.storage_url)
        if not self.storage_tiered:
            return hot
        return TieredStore(hot, self._open_store(self.storage_tier_url))

    def _open_store(self, url: str) -> Any:
        from storage import open_store

        return open_store(
            url,
            s3_endpoint=self.s3_endpoint,
            s3_access_key=self.s3_access_key.get_secret_value() if self.s3_access_key else None,
            s3_secret_key=self.s3_secret_key.get_secret_value() if self.s3_secret_key else None,
            s3_region=self.s3_region,
            s3_create_bucket=self.s3_create_bucket,
            fsync=self.storage_fsync,
        )

    def effective(self) -> dict[str, Any]:
        """Every setting with its effective value, secrets (and URL passwords) masked."""
        values = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            if field.annotation in (SecretStr, SecretStr | None) and values.get(name):
                values[name] = "********"
        values["database_url"] = _mask_url_password(self.database_url)
        return values


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
