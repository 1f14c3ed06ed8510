"""The procedural training data: nuclei images, brain phantoms and patches, Shepp-Logan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_genprior import synthetic
from napari_genprior.synthetic import brain_patches, brain_phantoms, nuclei_images, shepp_logan


def _check_images(x: np.ndarray, shape: tuple[int, ...]) -> None:
    assert x.shape == shape
    assert x.dtype == np.float32
    assert np.all(np.isfinite(x))
    assert x.min() >= 0.0 and x.max() <= 1.0


# ------------------------------------------------------------------------------------ nuclei


@pytest.fixture(scope="module")
def nuclei200() -> np.ndarray:
    return nuclei_images(200, seed=3)


def test_nuclei_shape_dtype_range(nuclei200):
    _check_images(nuclei200, (200, 64, 64))
    assert nuclei200.max() == 1.0  # the batch's 99.8th percentile maps to 1
    _check_images(nuclei_images(3, shape=(96, 80), seed=1), (3, 96, 80))
    assert nuclei_images(0).shape == (0, 64, 64)


def test_nuclei_deterministic_by_seed():
    a = nuclei_images(8, seed=5)
    np.testing.assert_array_equal(a, nuclei_images(8, seed=5))
    assert not np.array_equal(a, nuclei_images(8, seed=6))
    noisy = nuclei_images(8, seed=5, photons=50)
    np.testing.assert_array_equal(noisy, nuclei_images(8, seed=5, photons=50))


def test_nuclei_coverage_is_realistic(nuclei200):
    fg = (nuclei200 > 0.3).mean(axis=(1, 2))  # foreground fraction per image
    assert 0.05 < fg.mean() < 0.6
    assert (fg == 0).mean() < 0.3  # some empty fields, not many
    assert fg.max() > 0.25 and np.percentile(fg, 25) < fg.mean()  # sparse and dense fields
    # nuclei are blobs of a realistic size: count connected components per image
    labels = [ndimage.label(im > 0.3)[0] for im in nuclei200[:40]]
    counts = np.array([lab.max() for lab in labels])
    assert 1 <= counts.mean() <= 10
    sizes = np.concatenate([np.bincount(lab.ravel())[1:] for lab in labels])
    # median blob area: between a radius-3 and a radius-14 disc
    assert np.pi * 3**2 < np.median(sizes) < np.pi * 14**2
    # a dark background: most pixels are dark
    assert np.median(nuclei200) < 0.15


def test_nuclei_density_and_large_fields():
    sparse = (nuclei_images(60, seed=1, density=1) > 0.3).mean()
    dense = (nuclei_images(60, seed=1, density=8) > 0.3).mean()
    assert dense > 2 * sparse > 0
    assert (nuclei_images(10, seed=1, density=0) > 0.3).mean() == 0.0  # no nuclei, not stretched
    # a 256x256 field at the same scale: about the same coverage, 16 times as many nuclei
    big = nuclei_images(4, shape=(256, 256), seed=2, density=4)
    small = nuclei_images(64, shape=(64, 64), seed=2, density=4)
    _check_images(big, (4, 256, 256))
    assert 0.5 < (big > 0.3).mean() / (small > 0.3).mean() < 2.0
    n_big = np.mean([ndimage.label(im > 0.3)[0].max() for im in big])
    n_small = np.mean([ndimage.label(im > 0.3)[0].max() for im in small])
    assert n_big > 6 * n_small


def test_nuclei_poisson_noise(nuclei200):
    noisy = nuclei_images(200, seed=3, photons=30)
    _check_images(noisy, (200, 64, 64))
    assert not np.array_equal(noisy, nuclei200)
    assert abs(noisy.mean() - nuclei200.mean()) < 0.05 * nuclei200.mean()
    err_30 = np.abs(noisy - nuclei200).mean()
    err_300 = np.abs(nuclei_images(200, seed=3, photons=300) - nuclei200).mean()
    assert err_300 < 0.6 * err_30  # more photons, less noise
    # shot noise: brighter pixels are noisier (in absolute terms)
    bright, dark = nuclei200 > 0.5, nuclei200 < 0.1
    resid = noisy - nuclei200
    assert resid[bright].std() > resid[dark].std()


def test_nuclei_per_image_normalisation():
    x = nuclei_images(10, seed=4, density=4, normalise="image")
    _check_images(x, (10, 64, 64))
    np.testing.assert_allclose(x.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(x.min(axis=(1, 2)), 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=-1),
        dict(n=2, shape=(4, 64)),
        dict(n=2, photons=0),
        dict(n=2, density=-1),
        dict(n=2, normalise="x"),
    ],
)
def test_nuclei_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        nuclei_images(**kwargs)


# ------------------------------------------------------------------------------------ brains


@pytest.fixture(scope="module")
def brains256() -> np.ndarray:
    return brain_phantoms(8, shape=(256, 256), seed=0, shepp_logan_fraction=0.0)


def test_brain_shape_dtype_range_determinism(brains256):
    _check_images(brains256, (8, 256, 256))
    small = brain_phantoms(6, seed=1)
    _check_images(small, (6, 64, 64))
    np.testing.assert_array_equal(small, brain_phantoms(6, seed=1))
    assert not np.array_equal(small, brain_phantoms(6, seed=2))
    _check_images(brain_phantoms(2, shape=(80, 96), seed=0), (2, 80, 96))


def test_brain_whole_heads_at_any_size(brains256):
    for x in (brains256, brain_phantoms(10, shape=(64, 64), seed=3)):
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
        assert border.max() < 0.1  # the head is inside the field
        head = (x > 0.05).mean(axis=(1, 2))
        assert np.all((head > 0.3) & (head < 0.85))  # and fills much of it


def test_brain_histogram_has_several_classes(brains256):
    peaks = []
    for im in brains256:
        fg = im[im > 0.05]
        assert np.percentile(fg, 90) - np.percentile(fg, 10) > 0.3
        hist, _ = np.histogram(fg, bins=32, range=(0, 1))
        hs = np.convolve(hist, [1, 2, 1], "same")
        peaks.append(
            sum(
                1
                for i in range(1, 31)
                if hs[i] > hs[i - 1] and hs[i] >= hs[i + 1] and hs[i] > 0.01 * hs.sum()
            )
        )
    assert np.mean(np.array(peaks) >= 3) >= 0.75


def test_brain_bright_skull_ring(brains256):
    for im in brains256:
        head = ndimage.binary_fill_holes(im > 0.05)
        depth = ndimage.distance_transform_edt(head)  # pixels inside the head's edge
        band = [np.median(im[(depth > k) & (depth <= k + 1)]) for k in range(24)]
        rim = max(band[1:9])  # scalp: bright, a few pixels thick
        assert rim > 0.4
        assert min(band[5:24]) < 0.6 * rim  # then the dark skull


def test_brain_contrasts_vary():
    # the mean intensity inside the brain relative to the scalp differs a lot between images
    x = brain_phantoms(24, shape=(64, 64), seed=0, shepp_logan_fraction=0.0)
    centre = x[:, 24:40, 24:40].mean(axis=(1, 2))
    assert centre.std() > 0.05


def test_brain_shepp_logan_variants():
    x = brain_phantoms(4, shape=(128, 128), seed=0, shepp_logan_fraction=1.0)
    _check_images(x, (4, 128, 128))
    ref = shepp_logan((128, 128))
    for im in x:  # each perturbed, but Shepp-Logan-like
        assert np.corrcoef(im.ravel(), ref.ravel())[0, 1] < 0.99
        smooth = [ndimage.gaussian_filter(a, 4).ravel() for a in (im, ref)]
        assert np.corrcoef(*smooth)[0, 1] > 0.4


def test_brain_patches_skip_background():
    p = brain_patches(40, seed=0)
    _check_images(p, (40, 64, 64))
    assert np.all((p > 0.05).mean(axis=(1, 2)) >= 0.05)
    np.testing.assert_array_equal(p, brain_patches(40, seed=0))
    assert not np.array_equal(p, brain_patches(40, seed=1))
    strict = brain_patches(16, patch=32, slice_shape=(128, 128), seed=0, min_foreground=0.9)
    _check_images(strict, (16, 32, 32))
    assert np.all((strict > 0.05).mean(axis=(1, 2)) >= 0.9)
    with pytest.raises(ValueError):
        brain_patches(2, patch=300)


# ------------------------------------------------------------------------------ Shepp-Logan


def test_shepp_logan_matches_scikit_image():
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    ref = shepp_logan_phantom()  # 400x400, shipped with scikit-image
    p = shepp_logan((256, 256))
    _check_images(p, (256, 256))
    assert np.corrcoef(p.ravel(), resize(ref, (256, 256)).ravel())[0, 1] > 0.95
    assert np.corrcoef(shepp_logan((400, 400)).ravel(), ref.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(np.unique(np.round(p, 3)), [0, 0.1, 0.2, 0.3, 0.4, 1.0])
    assert shepp_logan((100, 140)).shape == (100, 140)


def test_module_uses_only_numpy_scipy_skimage():
    import ast
    from pathlib import Path

    files = sorted(Path(synthetic.__file__).parent.glob("*.py"))  # every module of the package
    assert len(files) > 1
    roots = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "numpy", "scipy", "skimage"}
