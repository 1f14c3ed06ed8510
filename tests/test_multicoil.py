"""Multi-coil MRI (SENSE): the operator, coil maps, complex images and the methods on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.operators import from_spec, real_inner
from napari_genprior.operators.coils import birdcage_maps, espirit_maps, rss
from napari_genprior.operators.mri import FixedPhase, SampledColumns, low_resolution_phase


def _brain(n: int = 96) -> np.ndarray:
    """A held-out real brain slice (never trained on), n x n, in [0, 1]."""
    from skimage.transform import resize

    from napari_genprior._io import sample_path

    data = np.load(sample_path("mri_heldout.npz"))
    x = resize(data["mni152_axial"][1], (n, n), anti_aliasing=True)
    return x / x.max()


def _smooth_phase(shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[0]
    return 1.2 * np.sin(2 * np.pi * (0.5 * yy + 0.3 * xx))


@pytest.fixture(scope="module")
def slice8():
    """A complex slice with smooth phase, 8 birdcage coils, 4x equispaced, noise 0.005."""
    x = _brain()
    xc = x * np.exp(1j * _smooth_phase(x.shape))
    A = ngp.make_operator(
        "mri",
        shape=x.shape,
        acceleration=4,
        mask="equispaced",
        center_fraction=0.12,
        seed=0,
        coils=8,
    )
    return x, xc, A, A.measure(xc, noise_std=0.005, seed=1)


def _psnr(x, image):
    return ngp.metrics.psnr(x, np.abs(image))


# -- the operator --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 24), (31, 25)])
def test_single_coil_complex_images_pass_the_dot_product_test(shape):
    A = ngp.make_operator("mri", shape=shape, acceleration=3, seed=2, complex_images=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, *shape, dtype=torch.complex128, generator=gen)
    y = torch.randn(2, *shape, dtype=torch.complex128, generator=gen)
    assert A.complex_images and A.measurement_shape == shape
    assert A.adjoint(y).is_complex() and A.normal_multiplier(torch.ones(shape)) is None
    assert float(real_inner(A(x), y)) == pytest.approx(
        float(real_inner(x, A.adjoint(y))), rel=1e-10
    )
    with pytest.raises(TypeError, match="complex_images must be True or False"):
        ngp.make_operator("mri", shape=shape, complex_images="yes")


@pytest.mark.parametrize("shape", [(32, 24), (31, 24), (32, 26)])
def test_adjoints_pass_the_dot_product_test_on_complex_images(shape):
    A = ngp.make_operator("mri", shape=shape, acceleration=3, mask="random", seed=2, coils=5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, *shape, dtype=torch.complex128, generator=gen)
    y = torch.randn(3, *A.measurement_shape, dtype=torch.complex128, generator=gen)
    assert A.measurement_shape == (5, *shape)
    assert float(real_inner(A(x), y)) == pytest.approx(
        float(real_inner(x, A.adjoint(y))), rel=1e-10
    )
    # the compact form (sampled columns only) is the same operator, its own adjoint too
    eq = ngp.make_operator(
        "mri", shape=shape, acceleration=3, mask="equispaced", seed=2, center_fraction=0.2, coils=5
    )
    yy = eq.measure(np.ones(shape), seed=0)
    C, yc = eq.compacted(yy)
    assert isinstance(C, SampledColumns) and yc.shape == C.measurement_shape
    torch.testing.assert_close(C(x), eq(x)[..., C.columns])
    torch.testing.assert_close(
        C.adjoint(torch.from_numpy(yc).to(torch.complex128)),
        eq.adjoint(torch.from_numpy(yy).to(torch.complex128)),
    )
    yr = torch.randn(3, *C.measurement_shape, dtype=torch.complex128, generator=gen)
    assert float(real_inner(C(x), yr)) == pytest.approx(
        float(real_inner(x, C.adjoint(yr))), rel=1e-10
    )
    # a fixed-phase view maps real magnitudes, with the adjoint Re(e^-i phi A^H y)
    F = FixedPhase(A, _smooth_phase(shape))
    m = torch.randn(2, *shape, dtype=torch.float64, generator=gen)
    assert F.adjoint(y[:2]).dtype == torch.float64
    assert float(real_inner(F(m), y[:2])) == pytest.approx(
        float(real_inner(m, F.adjoint(y[:2]))), rel=1e-10
    )


def test_fully_sampled_rss_is_the_magnitude_and_the_adjoint_inverts():
    x = _brain(48) * np.exp(1j * _smooth_phase((48, 48)))
    A = ngp.make_operator("mri", shape=(48, 48), acceleration=1, coils=6)
    assert np.allclose((np.abs(A.maps) ** 2).sum(0), 1, atol=1e-5)
    y = torch.from_numpy(A.measure(x))
    np.testing.assert_allclose(rss(A.coil_images(y)).numpy(), np.abs(x), atol=1e-5)
    np.testing.assert_allclose(A.adjoint(y).numpy(), x, atol=1e-5)


def test_spec_round_trip_simulated_maps_by_recipe_and_others_exactly():
    A = ngp.make_operator("mri", shape=(40, 32), acceleration=4, mask="equispaced", seed=3, coils=4)
    spec = A.spec()
    assert spec["coils"] == {"birdcage": 4, "radius": 1.5} and len(json.dumps(spec)) < 1000
    x = torch.randn(40, 32, dtype=torch.complex64)
    torch.testing.assert_close(from_spec(spec)(x), A(x))
    maps = birdcage_maps((40, 32), 3) * np.exp(0.3j)
    B = ngp.make_operator("mri", shape=(40, 32), mask=A.mask[0], coils=maps)
    rebuilt = from_spec(json.loads(json.dumps(B.spec())))
    np.testing.assert_array_equal(rebuilt.maps, maps.astype(np.complex64))
    torch.testing.assert_close(rebuilt(x), B(x))


def test_espirit_recovers_the_coil_subspace_and_needs_a_centre():
    x = _brain(64) * np.exp(1j * _smooth_phase((64, 64)))
    A = ngp.make_operator(
        "mri",
        shape=(64, 64),
        acceleration=4,
        mask="equispaced",
        center_fraction=0.25,
        seed=0,
        coils=6,
    )
    y = A.measure(x, noise_std=0.001, seed=0)
    maps = espirit_maps(y)
    assert maps.shape == (6, 64, 64) and maps.dtype == np.complex64
    inside = np.abs(x) > 0.2
    # maps are unique up to a phase per pixel: compare |<S_true, S_est>| per pixel
    overlap = np.abs((A.maps.conj() * maps).sum(0))[inside]
    assert np.median(overlap) > 0.95
    # and the SENSE recon with the estimated maps is as good as with the true ones
    B = ngp.make_operator("mri", shape=(64, 64), mask=A.mask[0], coils=maps)
    est = ngp.reconstruct(y, B, "cg").image
    true = ngp.reconstruct(y, A, "cg").image
    assert (
        _psnr(np.abs(x) * inside, np.abs(est) * inside)
        > _psnr(np.abs(x) * inside, np.abs(true) * inside) - 1.5
    )
    narrow = ngp.make_operator(
        "mri", shape=(64, 64), acceleration=4, mask="random", center_fraction=0.05, seed=0, coils=6
    )
    with pytest.raises(ValueError, match="fully sampled centre"):
        espirit_maps(narrow.measure(x, seed=0))


@pytest.mark.parametrize(
    "maps, error, words",
    [
        (np.ones((4, 10, 10), np.complex64), ValueError, "expected \\(coils, 32, 32\\)"),
        (np.full((2, 32, 32), np.nan, np.complex64), ValueError, "NaN"),
        (np.zeros((2, 32, 32), np.complex64), ValueError, "all zero"),
        (np.array([["a"]]), TypeError, "numeric"),
    ],
)
def test_bad_coil_maps_are_named(maps, error, words):
    with pytest.raises(error, match=words):
        ngp.make_operator("mri", shape=(32, 32), coils=maps)


def test_bad_measurements_and_methods_are_refused(slice8):
    x, xc, A, y = slice8
    with pytest.raises(ValueError, match="shape"):
        ngp.reconstruct(y[:4], A, "cg")
    with pytest.raises(ValueError, match="complex images"):
        ngp.reconstruct(y, A, "richardson-lucy")
    single = ngp.make_operator("mri", shape=x.shape, seed=0)
    with pytest.raises(TypeError, match="real image"):
        single.measure(xc)


# -- reconstructions ---------------------------------------------------------------------------


def test_sense_cg_and_tv_beat_zero_filling_and_keep_the_phase(slice8):
    x, xc, A, y = slice8
    zero = ngp.reconstruct(y, A, "adjoint")
    cg = ngp.reconstruct(y, A, "cg")
    tv = ngp.reconstruct(y, A, "tv", steps=150)
    for rec in (zero, cg, tv):
        assert rec.image.dtype == np.complex64 and rec.image.shape == x.shape
        assert json.dumps(rec.params)  # serialisable, and it rebuilds the operator
        assert from_spec(rec.params["operator"]).coils == 8
    p_zero, p_cg, p_tv = (_psnr(x, r.image) for r in (zero, cg, tv))
    assert p_cg > p_zero + 1.0, (p_zero, p_cg)
    assert p_tv > p_cg + 1.0, (p_cg, p_tv)
    assert 1 <= cg.params["iterations"] < 200
    inside = x > 0.3
    phase_error = np.angle(tv.image * np.conj(xc))[inside]
    assert np.median(np.abs(phase_error)) < 0.1


def test_lasso_wavelet_on_complex_images_beats_zero_filling(slice8):
    x, _, A, y = slice8
    zero = ngp.reconstruct(y, A, "adjoint")
    rec = ngp.reconstruct(y, A, "lasso-wavelet", steps=100)
    assert rec.image.dtype == np.complex64
    assert _psnr(x, rec.image) > _psnr(x, zero.image) + 1.0


def test_prior_methods_reconstruct_a_magnitude_with_the_smooth_phase(slice8):
    x, xc, A, y = slice8
    phase = low_resolution_phase(y, A)
    inside = x > 0.3
    assert np.median(np.abs(np.angle(np.exp(1j * phase) * np.conj(xc))[inside])) < 0.15
    zero = ngp.reconstruct(y, A, "adjoint")
    rec = ngp.reconstruct(y, A, "csgm", prior="mri-vae", steps=150, seed=0)
    assert rec.image.dtype == np.complex64 and "phase" in rec.params
    assert from_spec(rec.params["operator"]).coils == 8
    assert _psnr(x, rec.image) > _psnr(x, zero.image)


def test_cg_works_for_any_linear_operator_and_stops_on_held_out_entries(nuclei64):
    A = ngp.make_operator("blur", shape=nuclei64.shape, sigma=1.5)
    y = A.measure(nuclei64, noise_std=0.02, seed=0)
    rec = ngp.reconstruct(y, A, "cg")
    assert rec.image.dtype == np.float32
    assert ngp.metrics.psnr(nuclei64, rec.image) > ngp.metrics.psnr(nuclei64, y)
    curve = rec.params["heldout_misfit"]
    assert len(curve) > rec.params["iterations"]  # it went on past the best count, then stopped
    fixed = ngp.reconstruct(y, A, "cg", iterations=3)
    assert fixed.params["iterations"] == 3


def test_cg_cancel_returns_the_iterate_so_far(slice8):
    _, _, A, y = slice8
    calls = []
    rec = ngp.reconstruct(y, A, "cg", callback=lambda s, loss, im: calls.append(s) or s < 3)
    assert rec.cancelled and len(calls) == 3 and np.isfinite(rec.image).all()


def test_a_stack_of_multicoil_slices_gives_complex_planes(slice8):
    x, xc, A, _ = slice8
    Y = np.stack([A.measure(xc, noise_std=0.005, seed=s) for s in (1, 2)])
    rec = ngp.reconstruct_stack(Y, A, "cg")
    assert rec.image.shape == (2, *x.shape) and rec.image.dtype == np.complex64
    for plane, y in zip(rec.image, Y):
        alone = ngp.reconstruct(y, A, "cg").image
        np.testing.assert_allclose(plane, alone, atol=1e-5)
        assert _psnr(x, plane) > _psnr(x, ngp.reconstruct(y, A, "adjoint").image) + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_multicoil_on_cuda_matches_cpu(slice8):
    _, _, A, y = slice8
    C, yc = A.compacted(y)
    x = torch.randn(2, *A.shape, dtype=torch.complex64)
    for op in (A, C):
        G = op.copy().to("cuda")
        torch.testing.assert_close(G(x.cuda()).cpu(), op(x), rtol=1e-4, atol=1e-4)
    rec = ngp.reconstruct(y, A, "tv", steps=50, device="cuda")
    assert rec.image.dtype == np.complex64


def test_score_refines_the_phase_from_the_data():
    """A held-out 256x256 slice with a smooth random phase, 8 coils at 8x, coil maps estimated
    from the data (ESPIRiT, as on a scanner). The centre's phase is not precise enough for a
    magnitude prior (an error of 0.02 rad leaves a misfit the magnitude cannot explain):
    ``score`` refines it from the data, and its magnitude comes out far closer to the truth."""
    from genprior_bench.mri_multicoil import smooth_phase
    from napari_genprior._io import sample_path
    from napari_genprior.operators.coils import espirit_maps

    with np.load(sample_path("mri_heldout.npz")) as data:
        x = data["mni152_axial"][1].astype(np.float32) / 255
    xc = x * np.exp(1j * smooth_phase(x.shape, 1))
    T = ngp.make_operator(
        "mri",
        shape=x.shape,
        acceleration=8,
        mask="equispaced",
        center_fraction=0.08,
        seed=1,
        coils=8,
    )
    y = T.measure(xc, noise_std=0.005, seed=1)
    A = ngp.make_operator(
        "mri", shape=x.shape, mask=T.mask[0], coils=espirit_maps(y), center_fraction=0.08
    )
    opts = {"prior": "mri-score", "seed": 0, "device": "cpu"}
    fixed = ngp.reconstruct(y, A, "score", phase_every=0, **opts)
    refined = ngp.reconstruct(y, A, "score", **opts)
    assert refined.image.dtype == np.complex64 and "refined" in refined.params["phase"]
    assert "centre" in fixed.params["phase"] and "refined" not in fixed.params["phase"]
    assert refined.params["phase_updates"] >= 5
    # measured: 25.4 dB with the centre's phase, 31.2 dB refined (tv: 29.7 dB)
    assert _psnr(x, refined.image) > _psnr(x, fixed.image) + 3.0
