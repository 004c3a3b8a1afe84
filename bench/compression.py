"""Space saved by lossless compression (JPEG-LS) on synthetic noisy CT, CR and US images.

    .venv/bin/python -m bench.compression              # 20 images of each
    .venv/bin/python -m bench.compression --count 100

Images are generated with numpy: a CT slice (512x512, 12 bits stored: a body
phantom with Gaussian noise of 20 HU), a CR (2048x1660, 12 bits: smooth anatomy-like
gradients plus quantum noise) and an ultrasound frame (640x480, 8 bits: a
speckled sector). Each goes through :func:`pacs.archive.compression.compress_losslessly`
(encode, decode again, compare every pixel), as the compression job does. Prints,
per modality, bytes as sent, bytes stored, the ratio and the milliseconds per
image (the job's cost, paid once per image). Never fails on time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from pydicom.dataset import Dataset

from pacs.archive.compression import compress_losslessly
from tests.dicom_factory import ct_slice, to_bytes


def _image(kind: str, rng: np.random.Generator) -> Dataset:
    ds = ct_slice(size=8)
    if kind == "CT":
        y, x = np.mgrid[-256:256, -256:256]
        body = np.where(x**2 / 200**2 + y**2 / 150**2 < 1, 1064, 24)  # water in air (+1024)
        pixels = body + rng.normal(0, 20, body.shape)
        rows, cols, bits = 512, 512, 12
    elif kind == "CR":
        rows, cols, bits = 2048, 1660, 12
        y, x = np.mgrid[0:rows, 0:cols]
        anatomy = 1500 + 900 * np.sin(x / 180.0) * np.cos(y / 260.0) + 0.3 * x
        pixels = anatomy + rng.normal(0, 12, anatomy.shape)
    else:
        rows, cols, bits = 480, 640, 8
        y, x = np.mgrid[0:rows, 0:cols]
        sector = ((x - 320) ** 2 + y**2 < 460**2) & (np.abs(x - 320) < y * 0.8 + 20)
        pixels = np.where(sector, rng.rayleigh(40, (rows, cols)), 0)
    ds.Modality = kind
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit = bits, bits - 1
    dtype = np.uint16 if bits > 8 else np.uint8
    ds.PixelData = np.clip(pixels, 0, 2**bits - 1).astype(dtype).tobytes()
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(20)
    print(f"{'modality':8} {'images':>6} {'as sent MB':>11} {'stored MB':>10} {'ratio':>6} "
          f"{'ms/image':>9}")  # fmt: skip
    for kind in ("CT", "CR", "US"):
        sent = stored = 0
        times = []
        for _ in range(args.count):
            data = to_bytes(_image(kind, rng))
            started = time.perf_counter()
            result = compress_losslessly(data)
            times.append((time.perf_counter() - started) * 1000)
            sent += len(data)
            stored += len(result.data) if result else len(data)
        print(f"{kind:8} {args.count:>6} {sent / 1e6:>11.1f} {stored / 1e6:>10.1f} "
              f"{sent / stored:>6.2f} {statistics.median(times):>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
