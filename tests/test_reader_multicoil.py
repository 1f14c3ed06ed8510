"""fastMRI multi-coil HDF5 files in the reader: read lazily, one slice at a time, with ESPIRiT maps.

The files are written here with h5py: a smooth brain phantom with a smooth phase, seen by four
birdcage coils, sampled at 3x with equispaced columns around a fully sampled centre of 24
columns (ESPIRiT's 6x6 kernel needs a calibration region of about 20 columns to estimate four
coils' maps well; with 8-10 columns of a 48-wide slice its maps miss part of the object).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import napari_genprior as ngp
from napari_genprior import _layerdata
from napari_genprior._layerdata import (
    kspace_slice,
    kspace_slices,
    measurement_of,
    measurement_planes,
)
from napari_genprior._reader import get_reader, read_kspace_file
from napari_genprior.operators import from_spec
from napari_genprior.operators.coils import birdcage_maps
from napari_genprior.synthetic import brain_phantoms

SLICES, COILS, SHAPE = 3, 4, (80, 96)
AXES = (-2, -1)


def _fft(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=AXES), norm="ortho"), axes=AXES)


def _ifft(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=AXES), norm="ortho"), axes=AXES)


def _numpy_rss(k: np.ndarray) -> np.ndarray:
    return np.sqrt((np.abs(_ifft(k)) ** 2).sum(axis=-3))


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """Smooth magnitude images ``(slices, H, W)``: phantoms inside a margin of empty field."""
    h, w = SHAPE
    inner = brain_phantoms(SLICES, (h * 11 // 16, w * 2 // 3), seed=4)
    x = np.zeros((SLICES, h, w))
    top, left = (h - inner.shape[1]) // 2, (w - inner.shape[2]) // 2
    x[:, top : top + inner.shape[1], left : left + inner.shape[2]] = inner
    return np.stack([gaussian_filter(im, 1.0) for im in x])


@pytest.fixture(scope="module")
def columns() -> np.ndarray:
    A = ngp.make_operator(
        "mri", shape=SHAPE, acceleration=3, center_fraction=0.25, mask="equispaced", seed=1
    )
    return A.mask[0]


@pytest.fixture(scope="module")
def full_kspace(truth) -> np.ndarray:
    """Fully sampled multi-coil k-space ``(slices, coils, H, W)`` complex64, with noise."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]] / SHAPE[0]
    phase = np.exp(1j * (1.5 * yy - 1.0 * xx))
    k = _fft(truth[:, None] * phase * birdcage_maps(SHAPE, COILS))
    rng = np.random.default_rng(0)
    k = k + 0.002 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    return k.astype(np.complex64)


@pytest.fixture(scope="module")
def kspace(full_kspace, columns) -> np.ndarray:
    return full_kspace * columns


def _write(path, kspace, *, mask=None, rss=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        if mask is not None:
            f.create_dataset("mask", data=mask)
        if rss is not None:
            f.create_dataset("reconstruction_rss", data=rss)
        f.attrs["acquisition"] = "CORPD_FBK"
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory, kspace, truth):
    """A multi-coil file with a 64x64 centre-cropped reference."""
    path = tmp_path_factory.mktemp("multicoil") / "knee.h5"
    return _write(path, kspace, rss=truth[:, 8:72, 16:80].astype(np.float32))


def _layers(path):
    reader = get_reader(str(path))
    assert callable(reader)
    return {
        kwargs["name"]: (data, kwargs)
        for data, kwargs, kind in reader(str(path))
        if kind == "image"
    }


def _kspace_layer(layers):
    return next((data, kwargs) for name, (data, kwargs) in layers.items() if "k-space" in name)


def test_layers_of_a_multicoil_file(scan, truth, columns):
    import dask.array as da

    layers = _layers(scan)
    kname = f"knee [mri {SHAPE[1] / columns.sum():.3g}x k-space, {COILS} coils]"
    assert list(layers) == [kname, "knee [zero-filled]", "knee [rss]"]
    data, kwargs = layers[kname]
    assert isinstance(data, da.Array) and data.shape == (SLICES, *SHAPE)
    assert data.dtype == np.float32
    assert kwargs["contrast_limits"][1] > 0  # given, so napari computes no slice to find them
    meta = kwargs["metadata"]
    assert meta["hdf5_attrs"] == {"acquisition": "CORPD_FBK"}
    info = meta["genprior"]
    assert info["role"] == "measurement"
    assert info["coils"] == {"count": COILS, "maps": "espirit"}
    assert info["source"] == {
        "path": str(scan.resolve()),
        "dataset": "kspace",
        "slices": SLICES,
        "coils": COILS,
    }
    assert "measurement" not in info and "volume" not in info
    assert "coils" not in info["operator"]  # single-coil shaped: maps come per slice
    A = from_spec(info["operator"])
    assert A.shape == SHAPE and not A.coils
    np.testing.assert_array_equal(A.mask[0], columns)

    rss, rss_kwargs = layers["knee [zero-filled]"]
    assert isinstance(rss, da.Array) and rss.shape == (SLICES, *SHAPE)
    assert rss.dtype == np.float32
    assert rss_kwargs["metadata"]["genprior"]["role"] == "zero-filled"

    ref, ref_kwargs = layers["knee [rss]"]
    np.testing.assert_array_equal(ref, truth[:, 8:72, 16:80].astype(np.float32))
    assert tuple(ref_kwargs["translate"]) == (0.0, 8.0, 16.0)  # centred over the k-space


def test_the_file_is_read_one_slice_at_a_time(scan, monkeypatch):
    """Opening reads one slice (the middle); each shown slice reads that slice and no other."""
    reads: list = []  # (dataset name, key) of every h5py read of a dataset
    getitem, array = h5py.Dataset.__getitem__, h5py.Dataset.__array__

    def spy_getitem(self, key, *args, **kwargs):
        reads.append((self.name, key))
        return getitem(self, key, *args, **kwargs)

    def spy_array(self, *args, **kwargs):
        reads.append((self.name, "whole"))
        return array(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy_getitem)
    monkeypatch.setattr(h5py.Dataset, "__array__", spy_array)
    slices_read: list[int] = []
    read_slice = _layerdata.read_slice

    def counting(path, dataset, index):
        slices_read.append(index)
        return read_slice(path, dataset, index)

    monkeypatch.setattr(_layerdata, "read_slice", counting)

    layers = read_kspace_file(scan)
    assert [key for name, key in reads if name == "/kspace"] == [SLICES // 2]
    assert slices_read == []  # nothing computed yet: the layers are lazy
    kdata, rss = layers[0][0], layers[1][0]
    np.asarray(kdata[2])
    assert slices_read == [2]
    np.asarray(rss[0])
    assert slices_read == [2, 0]
    kspace_slice(layers[0][1]["metadata"], 1)
    assert slices_read == [2, 0, 1]
    assert all(isinstance(key, int) for name, key in reads if name == "/kspace"), reads


def test_the_zero_filled_layer_is_the_rss_of_the_coil_images(scan, kspace):
    layers = _layers(scan)
    kdata, _ = _kspace_layer(layers)
    rss = layers["knee [zero-filled]"][0]
    for i in (0, 2):
        np.testing.assert_allclose(np.asarray(rss[i]), _numpy_rss(kspace[i]), rtol=1e-4, atol=1e-5)
        shown = np.log1p(np.sqrt((np.abs(kspace[i]) ** 2).sum(axis=0)))
        np.testing.assert_allclose(np.asarray(kdata[i]), shown, rtol=1e-5, atol=1e-6)


def test_a_slice_reconstructs_with_espirit_maps_better_than_rss(scan, kspace, truth, columns):
    _, kwargs = _kspace_layer(_layers(scan))
    meta = kwargs["metadata"]
    y, A = kspace_slice(meta, 0)
    assert y.shape == (COILS, *SHAPE) and np.iscomplexobj(y)
    np.testing.assert_array_equal(y, kspace[0])
    assert not y[..., ~columns].any()
    assert A.kind == "mri" and A.coils == COILS and A.maps.shape == (COILS, *SHAPE)
    assert A.measurement_shape == (COILS, *SHAPE) and A.complex_images
    np.testing.assert_array_equal(A.mask[0], columns)
    assert A.acceleration == pytest.approx(SHAPE[1] / columns.sum())

    rec = ngp.reconstruct(y, A, "cg")
    assert rec.image.shape == SHAPE and np.iscomplexobj(rec.image)

    def fitted(image):  # ESPIRiT maps are defined up to a phase (and a scale): magnitudes, fitted
        return image * (image * truth[0]).sum() / (image * image).sum()

    p_cg = ngp.metrics.psnr(truth[0], fitted(np.abs(rec.image)))
    p_rss = ngp.metrics.psnr(truth[0], fitted(_numpy_rss(y)))
    assert p_cg > p_rss + 2, (p_cg, p_rss)

    with pytest.raises(ValueError, match="slice number"):
        kspace_slice(meta, SLICES)
    # a volume has no one operator: every entry point that wants one says to go slice by slice
    for call in (
        lambda: measurement_planes(None, meta),
        lambda: measurement_of(None, meta),
        lambda: ngp.api.measurement_from_layer(None, meta),
    ):
        with pytest.raises(ValueError, match=r"one slice at a time: kspace_slice\(metadata, i\)"):
            call()


def test_a_one_slice_file_gives_its_measurement(tmp_path, kspace, columns):
    path = _write(tmp_path / "one.h5", kspace[1:2])
    data, kwargs = _kspace_layer(_layers(path))
    assert data.shape == (1, *SHAPE)
    meta = kwargs["metadata"]
    y, A = measurement_planes(data, meta)
    assert y.shape == (COILS, *SHAPE) and A.coils == COILS
    np.testing.assert_array_equal(y, kspace[1])
    y2, _ = kspace_slice(meta)  # no index needed for one slice
    np.testing.assert_array_equal(y2, y)
    assert [yi.shape for yi, _ in kspace_slices(meta)] == [(COILS, *SHAPE)]


def test_the_mask_dataset_decides_the_columns(tmp_path, full_kspace, columns):
    path = _write(tmp_path / "masked.h5", full_kspace[:2], mask=columns.astype(np.float32))
    _, kwargs = _kspace_layer(_layers(path))
    A = from_spec(kwargs["metadata"]["genprior"]["operator"])
    np.testing.assert_array_equal(A.mask[0], columns)
    y, B = kspace_slice(kwargs["metadata"], 1)
    np.testing.assert_array_equal(y, full_kspace[1] * columns)
    np.testing.assert_array_equal(B.mask[0], columns)


def test_a_nan_in_a_slice_is_found_when_that_slice_is_read(tmp_path, kspace):
    bad = kspace.copy()
    bad[0, 2, 5, 5] = np.nan  # not the middle slice: opening the file does not see it
    _, kwargs = _kspace_layer(_layers(_write(tmp_path / "nan.h5", bad)))
    with pytest.raises(ValueError, match="slice 0 .*NaN"):
        kspace_slice(kwargs["metadata"], 0)
    kspace_slice(kwargs["metadata"], 1)  # the other slices still read


def test_a_narrow_centre_names_the_slice_espirit_cannot_calibrate(tmp_path, full_kspace):
    narrow = ngp.make_operator(
        "mri", shape=SHAPE, acceleration=4, center_fraction=0.04, mask="equispaced", seed=0
    ).mask[0]
    _, kwargs = _kspace_layer(_layers(_write(tmp_path / "narrow.h5", full_kspace[:2] * narrow)))
    with pytest.raises(ValueError, match="slice 1 .*ESPIRiT needs a fully sampled centre"):
        kspace_slice(kwargs["metadata"], 1)


def test_a_moved_file_cannot_be_read_later(tmp_path, kspace):
    path = _write(tmp_path / "moved.h5", kspace[:2])
    layers = read_kspace_file(path)
    path.unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        kspace_slice(layers[0][1]["metadata"], 0)


def _bad(kspace):
    nan = kspace.copy()
    nan[SLICES // 2, 0, 0, 0] = np.nan
    return {
        "coil axis last": (np.moveaxis(kspace, 1, -1), None, "coils in an unexpected axis"),
        "coil axis too long": (
            np.ones((2, 80, 8, 96), np.complex64),
            None,
            "coils in an unexpected axis",
        ),
        "five axes": (np.ones((2, 2, 4, 8, 8), np.complex64), None, "unexpected axis"),
        "real": (np.abs(kspace), None, "must be complex"),
        "empty": (np.ones((0, 4, 8, 8), np.complex64), None, "empty"),
        "mask length": (kspace, np.ones(SHAPE[1] - 1, bool), "'mask' has shape"),
        "nan": (nan, None, "slice 1 of 'kspace' contains NaN"),
        "zeros": (np.zeros((2, 4, 16, 16), np.complex64), None, "no k-space column is sampled"),
    }


@pytest.mark.parametrize("case", list(_bad(np.ones((SLICES, COILS, *SHAPE), np.complex64))))
def test_bad_multicoil_files_raise_a_sentence(tmp_path, kspace, case):
    data, mask, match = _bad(kspace)[case]
    path = _write(tmp_path / "bad.h5", data, mask=mask)
    reader = get_reader(str(path))
    assert callable(reader)  # it has k-space: ours, so the user hears why it cannot be read
    with pytest.raises(ValueError, match=match):
        reader(str(path))


def test_an_unreadable_file_raises_a_sentence(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature, then nothing
    with pytest.raises(ValueError, match="cannot be read"):
        read_kspace_file(path)


def test_a_slice_operator_refers_to_its_file_instead_of_holding_the_maps(scan):
    """The spec of a file slice's SENSE operator is small (a reference to the slice) and
    rebuilds the same operator by reading that slice again."""
    import json

    import torch

    from napari_genprior._layerdata import kspace_slice

    meta = _kspace_layer(_layers(scan))[1]["metadata"]
    y, A = kspace_slice(meta, 1)
    spec = json.loads(json.dumps(A.spec()))
    assert spec["coils"]["source"]["slice"] == 1 and len(json.dumps(spec)) < 2000
    B = from_spec(spec)
    np.testing.assert_allclose(B.maps, A.maps, atol=1e-6)
    x = torch.randn(*A.shape, dtype=torch.complex64)
    torch.testing.assert_close(B(x), A(x))
    rec = ngp.reconstruct(y, A, "cg")
    assert len(json.dumps(rec.params)) < 20_000
    missing = {
        **spec,
        "coils": {
            **spec["coils"],
            "source": {**spec["coils"]["source"], "path": str(scan) + ".gone"},
        },
    }
    with pytest.raises(ValueError, match="cannot be read"):
        from_spec(missing)
