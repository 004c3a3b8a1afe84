"""Export throughput and memory: ZIP, DICOMDIR and de-identified ZIP of one synthetic CT study.

    .venv/bin/python -m bench.export --slices 300

Stores ``--slices`` 512x512 16-bit CT slices (about 0.5 MB each) in a
temporary archive (SQLite, filesystem store), then runs each kind of export
job in this process (``Exports.run``, what the job runner calls) and prints the
seconds, MB/s of stored bytes exported, and how much the process's peak RSS
grew during that export (streaming keeps it flat whatever the study's size).
Never fails on time.
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings


def _slice(study: str, series: str, index: int, rng: np.random.Generator) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Nguyễn^Văn An", "BN0001", "19800101"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.Modality = "20261205", "101500", "A1", "CT"
    ds.InstanceNumber, ds.SeriesNumber = index + 1, 1
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), storage_fsync=False)
        archive = Archive.open(settings)
        try:
            rng = np.random.default_rng(7)
            study, series = generate_uid(), generate_uid()
            stored = 0
            for index in range(args.slices):
                raw = _slice(study, series, index, rng)
                stored += len(raw)
                archive.ingest(io.BytesIO(raw), Origin(door="import"))
            print(f"{args.slices} slices, {stored / 1e6:.1f} MB stored")
            who = Principal(Kind.USER, "bench", Role.ADMIN)
            for label, media, deid in (
                ("zip", "zip", False),
                ("dicomdir", "dicomdir", False),
                ("zip de-identified", "zip", True),
            ):
                view = archive.exports.create(who, [study], media, deidentify=deid)
                before = _peak_mb()
                started = time.perf_counter()
                done = archive.exports.run(view.id)
                seconds = time.perf_counter() - started
                print(
                    f"{label:18s} {seconds:6.2f} s  {stored / 1e6 / seconds:6.1f} MB/s  "
                    f"file {done.size / 1e6:6.1f} MB  peak RSS +{_peak_mb() - before:.0f} MB "
                    f"(process peak {_peak_mb():.0f} MB)"
                )
        finally:
            archive.close()


if __name__ == "__main__":
    main()
