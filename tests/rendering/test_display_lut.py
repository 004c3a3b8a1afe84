"""The lookup-table path of greyscale display gives exactly the per-pixel pipeline's output."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from pacs.rendering import _greyscale, _greyscale_pixels, _lut_applies


def _dataset(**attributes: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


CASES = [
    ("ct-window", np.int16, (-1024, 3071), {"RescaleSlope": 1, "RescaleIntercept": -1024,
                                             "WindowCenter": 40, "WindowWidth": 400}),
    ("ct-multi-window", np.int16, (-2000, 2000), {"RescaleSlope": 1, "RescaleIntercept": 0,
                                                  "WindowCenter": [40, 600],
                                                  "WindowWidth": [400, 1600]}),
    ("cr-stretch", np.uint16, (0, 4095), {}),
    ("pet-slope", np.uint16, (0, 30000), {"RescaleSlope": 0.37, "RescaleIntercept": 2.5}),
    ("negative-slope", np.int16, (-500, 500), {"RescaleSlope": -2, "RescaleIntercept": 7,
                                               "WindowCenter": 0, "WindowWidth": 300}),
    ("threshold", np.uint16, (0, 1000), {"WindowCenter": 500, "WindowWidth": 1}),
    ("uint8", np.uint8, (0, 255), {"WindowCenter": 128, "WindowWidth": 100}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "dtype", "bounds", "attributes"), CASES)
@pytest.mark.parametrize("window", [None, (100.0, 50.0)])
def test_lut_equals_per_pixel_pipeline(
    name: str,
    dtype: type,
    bounds: tuple[int, int],
    attributes: dict[str, object],
    window: tuple[float, float] | None,
) -> None:
    rng = np.random.default_rng(len(name))
    values = rng.integers(bounds[0], bounds[1] + 1, size=(128, 96)).astype(dtype)
    ds = _dataset(PhotometricInterpretation="MONOCHROME2", **attributes)
    assert _lut_applies(values, ds)
    expected = _greyscale_pixels(values, ds, window)
    shown = _greyscale(values, ds, window)
    assert shown.dtype == np.uint8
    np.testing.assert_array_equal(shown, expected)


def test_tables_in_the_dataset_keep_the_per_pixel_path() -> None:
    values = np.zeros((128, 128), np.uint16)
    assert not _lut_applies(values, _dataset(VOILUTSequence=[]))
    assert not _lut_applies(values, _dataset(ModalityLUTSequence=[]))
    assert not _lut_applies(values.astype(np.float32), _dataset())
    assert not _lut_applies(values.astype(np.int32), _dataset())
