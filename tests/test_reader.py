"""The fastMRI-style HDF5 reader: files written here with h5py, read back as napari layers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior import _reader
from napari_genprior._layerdata import measurement_of
from napari_genprior._reader import get_reader, kspace_slice
from napari_genprior.synthetic import brain_phantoms

SHAPE = (96, 96)
TV = {"method": "tv", "seed": 0}  # its weight chosen by held-out k-space, as users run it


@pytest.fixture(scope="module")
def phantoms() -> np.ndarray:
    """Three brain-phantom slices in [0, 1] (a seed the bundled MRI prior never saw)."""
    return brain_phantoms(3, SHAPE, seed=11)


@pytest.fixture(scope="module")
def scanner():
    """The 4x random column mask the test files are 'acquired' with."""
    return ngp.make_operator(
        "mri", shape=SHAPE, acceleration=4, center_fraction=0.08, mask="random", seed=3
    )


def _write(path, kspace, *, mask=None, rss=None, attrs=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        if mask is not None:
            f.create_dataset("mask", data=mask)
        if rss is not None:
            f.create_dataset("reconstruction_rss", data=rss)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def _layers(path):
    reader = get_reader(str(path))
    assert callable(reader)
    return {
        kwargs["name"]: (data, kwargs)
        for data, kwargs, kind in reader(str(path))
        if kind == "image"
    }


def _zero_filled(k: np.ndarray) -> np.ndarray:
    """The complex inverse centred orthonormal FFT, in numpy (independent of the package)."""
    ax = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=ax), norm="ortho"), axes=ax)


def test_one_slice_round_trips_and_reconstructs(tmp_path, phantoms, scanner):
    x = phantoms[0]
    # a scanner's image has a smooth phase (B0, the receive coil): the file's k-space carries it
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]] / SHAPE[0]
    phase = 1.5 * np.sin(2.5 * rows + 0.5) + 1.2 * cols
    complex_scanner = ngp.make_operator(**{**scanner.spec(), "complex_images": True})
    y = complex_scanner.measure(x * np.exp(1j * phase), noise_std=0.005, seed=1)
    path = _write(tmp_path / "slice.h5", y, attrs={"acquisition": "CORPD_FBK"})
    layers = _layers(path)
    name = f"slice [mri {96 / scanner.mask[0].sum():.3g}x k-space]"
    assert list(layers) == [name, "slice [zero-filled]"]
    data, kwargs = layers[name]
    meta = kwargs["metadata"]
    assert meta["hdf5_attrs"] == {"acquisition": "CORPD_FBK"}
    assert meta["genprior"]["source"]["dataset"] == "kspace"
    np.testing.assert_allclose(data, np.log1p(np.abs(y)), rtol=1e-6)

    y2, A = measurement_of(data, meta)
    assert A.kind == "mri" and A.shape == SHAPE
    np.testing.assert_array_equal(A.mask, scanner.mask)
    np.testing.assert_array_equal(y2, y)  # exactly what was written
    y3, _ = kspace_slice(meta)
    np.testing.assert_array_equal(y3, y)

    complex_image = _zero_filled(y)
    zf = layers["slice [zero-filled]"][0]
    np.testing.assert_allclose(zf, np.abs(complex_image), atol=1e-5)
    assert A.complex_images and A.spec()["complex_images"]
    adjoint = ngp.reconstruct(y2, A, method="adjoint").image
    # the operator models the complex image: its adjoint is the complex zero-filled image
    np.testing.assert_allclose(adjoint, complex_image, atol=1e-5)
    tv = ngp.reconstruct(y2, A, **TV).image
    p_zf, p_tv = ngp.metrics.psnr(x, zf), ngp.metrics.psnr(x, np.abs(tv))
    assert p_tv > p_zf + 2, (p_zf, p_tv)
    # a real-image model (the real part of the adjoint) loses the half of the data the phase
    # rotated into the imaginary part
    real_model = ngp.make_operator(**{**A.spec(), "complex_images": False})
    p_real = ngp.metrics.psnr(x, ngp.reconstruct(y2, real_model, **TV).image)
    assert p_tv > p_real + 3, (p_real, p_tv)


@pytest.mark.parametrize("mask_dtype", [bool, np.float32])
def test_volume_with_mask_and_reference(tmp_path, phantoms, scanner, mask_dtype):
    y = scanner.measure(phantoms, noise_std=0.005, seed=2)
    assert y.shape == (3, *SHAPE)
    rss = phantoms[:, 8:88, 12:84]  # a centre crop, as fastMRI stores its references
    path = _write(tmp_path / "vol.hdf5", y, mask=scanner.mask[0].astype(mask_dtype), rss=rss)
    layers = _layers(path)
    name = next(n for n in layers if "k-space" in n)
    assert set(layers) == {name, "vol [zero-filled]", "vol [rss]"}
    data, kwargs = layers[name]
    meta = kwargs["metadata"]
    assert data.shape == (3, *SHAPE) and "volume" in meta["genprior"]
    assert meta["genprior"]["source"]["slices"] == 3
    for i in range(3):
        yi, A = kspace_slice(meta, i)
        np.testing.assert_array_equal(A.mask, scanner.mask)
        np.testing.assert_array_equal(yi, y[i])
    with pytest.raises(ValueError, match="slice number"):
        kspace_slice(meta, 3)
    with pytest.raises(ValueError):
        measurement_of(data, meta)  # a volume is not one slice's measurement

    zf = layers["vol [zero-filled]"][0]
    assert zf.shape == (3, *SHAPE)
    np.testing.assert_allclose(zf, np.abs(_zero_filled(y)), atol=1e-5)
    ref, ref_kwargs = layers["vol [rss]"]
    np.testing.assert_array_equal(ref, rss)
    assert tuple(ref_kwargs["translate"]) == (0.0, 8.0, 12.0)


def test_large_volume_is_read_from_the_file(tmp_path, phantoms, scanner, monkeypatch):
    monkeypatch.setattr(_reader, "EMBED_MAX_BYTES", 0)
    y = scanner.measure(phantoms, noise_std=0.005, seed=2)
    path = _write(tmp_path / "big.h5", y)
    _, kwargs = next(v for n, v in _layers(path).items() if "k-space" in n)
    meta = kwargs["metadata"]
    assert "volume" not in meta["genprior"] and "measurement" not in meta["genprior"]
    y2, A = kspace_slice(meta, 2)
    np.testing.assert_array_equal(y2, y[2])
    np.testing.assert_array_equal(A.mask, scanner.mask)
    tv = ngp.reconstruct(y2, A, **TV).image
    zf = np.abs(_zero_filled(y2))
    assert ngp.metrics.psnr(phantoms[2], tv) > ngp.metrics.psnr(phantoms[2], zf) + 2
    path.unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        kspace_slice(meta, 2)


def test_mask_dataset_undersamples_fully_sampled_kspace(tmp_path, phantoms, scanner):
    full = ngp.make_operator("mri", shape=SHAPE, acceleration=1).measure(phantoms[0])
    path = _write(tmp_path / "full.h5", full, mask=scanner.mask[0])
    data, kwargs = next(v for n, v in _layers(path).items() if "k-space" in n)
    y, A = measurement_of(data, kwargs["metadata"])
    np.testing.assert_array_equal(A.mask, scanner.mask)
    np.testing.assert_array_equal(y, full * scanner.mask)
    assert A.acceleration == pytest.approx(96 / scanner.mask[0].sum())
    assert A.center_fraction == pytest.approx(8 / 96)  # fastMRI's centre: 8 of 96 columns


def test_fully_sampled_file_reads_as_acceleration_1(tmp_path, phantoms):
    full = ngp.make_operator("mri", shape=SHAPE, acceleration=1).measure(phantoms[0])
    layers = _layers(_write(tmp_path / "full.h5", full))
    name = next(n for n in layers if "k-space" in n)
    assert name == "full [mri 1x k-space]"
    y, A = measurement_of(layers[name][0], layers[name][1]["metadata"])
    assert A.mask.all()
    np.testing.assert_allclose(
        ngp.reconstruct(y, A, method="adjoint").image, phantoms[0], atol=1e-5
    )


def test_not_ours_gives_no_reader(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file")
    other = _write_plain(tmp_path / "image.h5", image=np.zeros((4, 4), np.float32))
    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as f:
        f.create_group("kspace")
    for path in (text, other, group, tmp_path / "missing.h5", tmp_path):
        assert get_reader(str(path)) is None, path
    assert get_reader([str(other)]) is None


def _write_plain(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


@pytest.mark.parametrize(
    "kspace, mask, match",
    [
        (np.ones((8, 8), np.float32), None, "must be complex"),
        (np.ones((2, 2, 2, 8, 8), np.complex64), None, "unexpected axis"),
        (np.ones(8, np.complex64), None, "expected one slice"),
        (np.zeros((8, 8), np.complex64), None, "no k-space column is sampled"),
        (np.ones((8, 8), np.complex64), np.ones(5, bool), "'mask' has shape"),
        (np.full((8, 8), np.nan, np.complex64), None, "NaN"),
    ],
)
def test_bad_kspace_raises_a_sentence(tmp_path, kspace, mask, match):
    path = _write(tmp_path / "bad.h5", kspace, mask=mask)
    reader = get_reader(str(path))
    assert callable(reader)  # it has k-space: ours, so the user hears why it cannot be read
    with pytest.raises(ValueError, match=match):
        reader(str(path))


def test_mismatched_reference_is_skipped_with_a_warning(tmp_path, phantoms, scanner):
    y = scanner.measure(phantoms, seed=0)
    path = _write(tmp_path / "odd.h5", y, rss=phantoms[:2])
    with pytest.warns(UserWarning, match="reconstruction_rss"):
        layers = _layers(path)
    assert "odd [rss]" not in layers and "odd [zero-filled]" in layers


def test_several_files_at_once(tmp_path, phantoms, scanner):
    paths = [
        str(_write(tmp_path / f"s{i}.h5", scanner.measure(phantoms[i], seed=i))) for i in range(2)
    ]
    names = [kwargs["name"] for _, kwargs, _ in get_reader(paths)(paths)]
    assert [n for n in names if "zero-filled" in n] == ["s0 [zero-filled]", "s1 [zero-filled]"]


@pytest.mark.gui
def test_napari_opens_the_file_with_the_plugin(make_napari_viewer, tmp_path, phantoms, scanner):
    y = scanner.measure(phantoms, noise_std=0.005, seed=2)
    path = _write(tmp_path / "scan.h5", y, mask=scanner.mask[0], rss=phantoms[:, 8:88, 8:88])
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-genprior")
    names = [layer.name for layer in viewer.layers]
    kname = next(n for n in names if "k-space" in n)
    assert set(names) == {kname, "scan [zero-filled]", "scan [rss]"}
    layer = viewer.layers[kname]
    assert layer.data.shape == (3, *SHAPE)
    y0, A = kspace_slice(layer.metadata, 0)
    np.testing.assert_array_equal(y0, y[0])
    np.testing.assert_array_equal(A.mask, scanner.mask)
