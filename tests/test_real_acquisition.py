"""Real acquisitions (issue 32): a crop of a larger field, recorded by a camera with an offset
and a gain, deconvolved without a border assumption. The measurements here are made by a path
independent of the operator the methods use (scipy's Gaussian filter over the larger field,
then a crop), so these tests do not commit the inverse crime."""

import json

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

import napari_genprior as ngp
from napari_genprior.operators import from_spec
from napari_genprior.solvers.camera import estimate_camera

CAMERA = {"offset": 100.0, "gain": 2.0, "read_noise": 2.0}


def _unit(a):
    a = np.asarray(a, np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / (hi - lo), 0, 1)


@pytest.fixture(scope="module")
def crop():
    """A 96x96 crop of `camera` (bright content at its border), blurred over the whole 512x512
    field (sigma 2), 200 photons at the brightest, background 0.05, camera ADU."""
    big = _unit(data.camera())
    blurred = ndimage.gaussian_filter(big, 2.0, mode="reflect", truncate=6.0)
    sl = (slice(180, 276), slice(170, 266))
    rng = np.random.default_rng(0)
    counts = rng.poisson(200 * (blurred[sl] + 0.05))
    adu = CAMERA["offset"] + CAMERA["gain"] * (counts + rng.normal(0, 2, counts.shape))
    return big[sl], np.round(adu).astype(np.float32)


def _truth_units(adu):
    return (adu - CAMERA["offset"]) / CAMERA["gain"] / 200 - 0.05


def test_deconvolving_a_crop_of_a_larger_field_beats_the_measurement_without_a_frame(crop):
    x, adu = crop
    meas = ngp.metrics.psnr(x, _truth_units(adu), 1.0)
    A = ngp.make_operator("blur", shape=x.shape, sigma=2.0)  # the default: an unknown border
    assert A.spec()["boundary"] == "unknown"
    rec = ngp.reconstruct(adu, A, method="tv", device="cpu")
    out = _truth_units(rec.image)
    assert rec.image.shape == x.shape
    assert ngp.metrics.psnr(x, out, 1.0) > meas + 2.0
    # no bright frame: the border band (less constrained: half its light's sources lie
    # outside) within 2x the interior's error, where the zero border's band is far worse
    band = np.ones(x.shape, bool)
    band[10:-10, 10:-10] = False
    err_band = np.sqrt(np.mean((out - x)[band] ** 2))
    err_core = np.sqrt(np.mean((out - x)[~band] ** 2))
    assert err_band < 2.0 * err_core
    assert out.min() > -0.15 and out.max() < 1.25
    # what the project did before: a zero border frames the result and loses to the input
    zero = ngp.make_operator("blur", shape=x.shape, sigma=2.0, boundary="zero")
    framed = _truth_units(ngp.reconstruct(adu, zero, method="tv", device="cpu").image)
    assert ngp.metrics.psnr(x, framed, 1.0) < meas
    assert np.sqrt(np.mean((framed - x)[band] ** 2)) > 2.5 * err_band


def test_richardson_lucy_on_raw_camera_counts_fits_the_camera(crop):
    x, adu = crop
    A = ngp.make_operator("blur", shape=x.shape, sigma=2.0)
    meas = ngp.metrics.psnr(x, _truth_units(adu), 1.0)
    rec = ngp.reconstruct(adu, A, method="richardson-lucy", device="cpu")
    cam = rec.params["camera"]
    assert set(cam["estimated"]) == {"offset", "gain", "read_noise"}
    assert cam["gain"] == pytest.approx(2.0, rel=0.15)
    assert 70 < cam["offset"] <= 110
    good = ngp.metrics.psnr(x, _truth_units(rec.image), 1.0)
    assert good > meas + 1.5
    # the result is in the layer's units: it overlays the input (same mean level)
    assert abs(float(rec.image.mean()) - float(adu.mean())) < 0.02 * float(adu.mean())
    raw = ngp.reconstruct(adu, A, method="richardson-lucy", device="cpu", camera=None)
    assert "camera" not in raw.params
    # a known camera is taken as given
    known = ngp.reconstruct(adu, A, method="richardson-lucy", device="cpu", camera=CAMERA)
    assert known.params["camera"]["offset"] == 100.0 and known.params["camera"]["estimated"] == []


def test_the_camera_is_estimated_from_the_noise():
    rng = np.random.default_rng(1)
    x = ndimage.gaussian_filter(_unit(data.camera()), 2)
    y = 100 + 2 * (rng.poisson(200 * x + 10) + rng.normal(0, 2, x.shape))
    cam = estimate_camera(y)
    assert cam["gain"] == pytest.approx(2.0, rel=0.05)
    assert 85 < cam["offset"] <= 100
    part = estimate_camera(y, {"offset": 100})
    assert part["offset"] == 100 and part["read_noise"] == pytest.approx(2.0, rel=0.3)
    # Gaussian noise alone: the identity camera
    flat = estimate_camera(x + rng.normal(0, 0.01, x.shape))
    assert flat["gain"] == 1.0 and flat["offset"] == 0.0
    assert flat["read_noise"] == pytest.approx(0.01, rel=0.2)


@pytest.mark.parametrize(
    "camera,match",
    [
        ({"gain": 0}, "gain"),
        ({"offset": float("nan")}, "offset"),
        ({"bias": 3}, "does not take"),
        ("yes", "camera must be"),
    ],
)
def test_a_bad_camera_gets_a_sentence(camera, match):
    A = ngp.make_operator("blur", shape=(32, 32), sigma=1.0)
    with pytest.raises(ValueError, match=match):
        ngp.reconstruct(np.ones((32, 32)), A, method="tv", camera=camera)


def test_a_camera_is_refused_for_measurements_that_are_not_intensities():
    A = ngp.make_operator("mri", shape=(32, 32), acceleration=2, seed=0)
    y = A.measure(np.ones((32, 32)), noise_std=0.01, seed=0)
    with pytest.raises(ValueError, match="intensities"):
        ngp.reconstruct(y, A, method="cg", camera={"offset": 100})
    ngp.reconstruct(y, A, method="cg")  # "auto" models no camera here


def test_measure_simulates_a_camera_and_background():
    A = ngp.make_operator("blur", shape=(48, 48), sigma=1.5)
    x = np.zeros((48, 48))
    x[10:30, 12:40] = 1.0
    y = A.measure(x, photons=200, background=0.05, camera=CAMERA, seed=0)
    assert np.array_equal(y, np.round(y)) and y.min() >= 0
    dark = y[40:, :8]  # 10 background photons: 100 + 2 * 10 ADU
    assert dark.mean() == pytest.approx(120, abs=3)
    with pytest.raises(ValueError, match="photons"):
        A.measure(x, camera=CAMERA)


def test_the_boundary_is_in_the_spec_and_every_choice_rebuilds():
    for boundary in ("unknown", "zero", "periodic"):
        A = ngp.make_operator("blur", shape=(20, 24), sigma=1.5, boundary=boundary)
        B = from_spec(json.loads(json.dumps(A.spec())))
        assert B.boundary == boundary and B.domain_shape == A.domain_shape
    assert ngp.make_operator("blur", shape=(20, 24), sigma=1.5).domain_shape == (32, 36)
    with pytest.raises(ValueError, match="boundary"):
        ngp.make_operator("blur", shape=(20, 24), sigma=1.5, boundary="mirror")


@pytest.mark.parametrize("method", ["richardson-lucy", "lasso-wavelet", "dip", "adjoint"])
def test_every_blur_method_returns_the_field_of_view(crop, method):
    x, adu = crop
    A = ngp.make_operator("blur", shape=x.shape, sigma=2.0)
    kw = {"steps": 20} if method == "dip" else {}
    previews = []
    rec = ngp.reconstruct(
        adu,
        A,
        method=method,
        device="cpu",
        preview_every=5,
        **kw,
        callback=lambda s, loss, im: previews.append(None if im is None else im.shape),
    )
    assert rec.image.shape == x.shape and np.isfinite(rec.image).all()
    assert x.shape in previews or method == "adjoint"


def test_a_prior_mosaic_covers_the_extended_domain():
    x = _unit(data.camera())[200:264, 200:264]
    A = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    y = A.measure(x, noise_std=0.01, seed=0)
    rec = ngp.reconstruct(y, A, method="csgm", prior="nuclei-vae", steps=10, device="cpu")
    assert rec.image.shape == x.shape
    assert tuple(rec.params["prior"]["mosaic"]["image_shape"])[-2:] == A.domain_shape


def test_a_3d_stack_extends_in_z_too():
    A = ngp.make_operator("blur", shape=(6, 20, 20), sigma=(1.0, 1.0, 1.0))
    # the Gaussian's 4-sigma reach along y and x; along z it is clipped to fit the stack
    assert A.domain_shape == (10, 28, 28)
    x = np.random.default_rng(0).random((6, 20, 20))
    rec = ngp.reconstruct(A.measure(x, photons=500, seed=0), A, method="richardson-lucy")
    assert rec.image.shape == x.shape


def test_the_real_acquisition_benchmark_runs_at_quick_size():
    from genprior_bench import real_acquisition

    res = real_acquisition.run(quick=True, device="cpu", seed=0)
    row = res.data["2d"][0]
    # the unknown border beats the measurement; the zero border loses to it
    assert row["tv"]["psnr"] > row["measurement"]["psnr"] + 1.5
    assert row["tv, zero boundary"]["psnr"] < row["measurement"]["psnr"]
    assert row["tv"]["camera"]["gain"] == pytest.approx(2.0, rel=0.2)
    stack = res.data["3d"]
    assert max(stack["tv"]["psnr"], stack["richardson-lucy"]["psnr"]) > stack["measurement"]["psnr"]
    assert "examples" in res.figures and res.checks
