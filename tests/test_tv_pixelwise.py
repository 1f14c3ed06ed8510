"""``tv`` on pixel-wise operators (``denoise``, ``inpaint``) and single-coil MRI: the data term
solved in the primal step (solvers/tv.py, ``_chambolle_pock_exact``) solves the same problem as
the linearised Chambolle-Pock, in fewer steps, and beats scikit-image's tools on a real nuclei
tile."""

import numpy as np
import pytest
import torch  # first, before anything that may import Qt (conftest sets one thread)
from skimage.restoration import denoise_tv_chambolle, inpaint_biharmonic
from test_classical import _last, make_problem, rectangles

import napari_genprior as ngp
from genprior_bench._common import real_nuclei
from napari_genprior.solvers import tv
from napari_genprior.solvers._classical_ops import divergence, gradient, largest_eigenvalue

psnr = ngp.metrics.psnr


def _linearised(problem, A, shape):
    norm = np.sqrt(
        1.05
        * largest_eigenvalue(
            lambda v: A.adjoint(A(v)) - divergence(gradient(v, len(shape)), len(shape)),
            shape,
            seed=0,
            device="cpu",
        )
    )
    return tv._chambolle_pock(problem, float(norm), tol=0.0)


@pytest.mark.parametrize("kind, params", [("denoise", {}), ("inpaint", {"seed": 0})])
def test_the_pixelwise_core_reaches_the_same_minimum_as_the_linearised_one(kind, params):
    x = rectangles()
    A = ngp.make_operator(kind, shape=x.shape, **params)
    assert A.pixelwise
    y = A.measure(x, noise_std=0.05, seed=1)
    problem = make_problem(y, A)
    W = torch.ones(y.shape) if problem.observed is None else problem.observed.float()
    lams = torch.tensor([0.05])
    fast = _last(tv._chambolle_pock_exact(problem, tol=0.0)(W, lams, 2000, None))
    slow = _last(_linearised(problem, A, x.shape)(W, lams, 5000, None))
    # measured: objectives 4.91244 / 4.91252 (denoise), 4.35175 / 4.35159 (inpaint)
    torch.testing.assert_close(fast.objective, slow.objective, rtol=2e-4, atol=0)
    assert float((fast.x - slow.x).abs().max()) < 5e-3
    # ... and gets near it quickly: within 1% after 100 steps (measured 0.01% / 0.4%)
    early = _last(tv._chambolle_pock_exact(problem, tol=0.0)(W, lams, 100, None))
    assert float(early.objective) < 1.01 * float(slow.objective)


@pytest.mark.parametrize("acceleration, mask", [(4, "variable-density"), (8, "equispaced")])
def test_single_coil_mri_is_solved_exactly_in_fourier_and_reaches_the_same_minimum(
    acceleration, mask
):
    x = rectangles()
    A = ngp.make_operator("mri", shape=x.shape, acceleration=acceleration, mask=mask, seed=0)
    y = A.measure(x, noise_std=0.01, seed=1)
    problem = make_problem(y, A)
    W = problem.observed.float()
    lams = torch.tensor([0.02])
    slow = _last(_linearised(problem, A, x.shape)(W, lams, 5000, None))
    fast = _last(tv._chambolle_pock_exact(problem, tol=0.0)(W, lams, 2000, None))
    # measured: objectives 1.871946 / 1.871956 (4x), 1.527803 / 1.527805 (8x)
    torch.testing.assert_close(fast.objective, slow.objective, rtol=2e-5, atol=0)
    assert float((fast.x - slow.x).abs().max()) < 2e-3  # measured 3e-4
    early = _last(tv._chambolle_pock_exact(problem, tol=0.0)(W, lams, 100, None))
    assert float(early.objective) < 1.05 * float(slow.objective)  # measured 1.003, 1.026


def test_tv_takes_the_exact_path_for_single_coil_mri_only(monkeypatch):
    used = []
    exact = tv._chambolle_pock_exact
    monkeypatch.setattr(
        tv, "_chambolle_pock_exact", lambda *a, **k: used.append(1) or exact(*a, **k)
    )
    x = rectangles(16)
    for coils, expected in ((None, 1), (4, 0)):
        used.clear()
        A = ngp.make_operator("mri", shape=x.shape, acceleration=2, seed=0, coils=coils)
        ngp.reconstruct(A.measure(x, noise_std=0.01, seed=0), A, "tv", steps=5, device="cpu")
        assert len(used) == expected, coils


@pytest.fixture(scope="module")
def tile():
    return real_nuclei(1)[0][0]


def test_tv_inpaints_a_real_tile_better_than_biharmonic_in_25_steps(tile):
    A = ngp.make_operator("inpaint", shape=tile.shape, seed=0)
    y = A.measure(tile, noise_std=0.01, seed=0)
    ours = ngp.reconstruct(y, A, "tv", lam=0.01, steps=25, tol=0.0, device="cpu").image
    theirs = inpaint_biharmonic(y, ~A.mask)
    # measured: ours 40.2 dB, biharmonic 39.8 dB (the linearised Chambolle-Pock: 24.0 dB)
    assert psnr(tile, ours) > psnr(tile, theirs), (psnr(tile, ours), psnr(tile, theirs))


def test_tv_denoises_a_real_tile_as_well_as_scikit_image_in_10_steps(tile):
    A = ngp.make_operator("denoise", shape=tile.shape)
    y = A.measure(tile, noise_std=0.1, seed=0)
    ours = ngp.reconstruct(y, A, "tv", lam=0.2, steps=10, tol=0.0, device="cpu").image
    best = max(psnr(tile, denoise_tv_chambolle(y, weight=w)) for w in (0.06, 0.08, 0.1, 0.12))
    # measured: ours 35.45 dB, scikit-image's best 35.0 dB (the linearised: 21 dB in 10 steps)
    assert psnr(tile, ours) > best - 0.1, (psnr(tile, ours), best)


def test_the_pixelwise_batched_search_equals_separate_solves():
    x = rectangles()
    A = ngp.make_operator("inpaint", shape=x.shape, seed=3)
    y = A.measure(x, noise_std=0.05, seed=1)
    problem = make_problem(y, A)
    core = tv._chambolle_pock_exact(problem, tol=0.0)
    W = problem.observed.float()
    lams = torch.tensor([0.003, 0.03])
    both = _last(core(W, lams, 40, None))
    for i in range(2):
        one = _last(core(W, lams[i : i + 1], 40, None))
        torch.testing.assert_close(both.x[i], one.x[0], atol=1e-5, rtol=1e-4)
    assert float((both.x[0] - both.x[1]).abs().max()) > 1e-3


def test_a_denoised_stack_is_smoothed_in_3d_and_the_input_is_untouched():
    x = np.stack([rectangles(16)] * 6).astype(np.float32)
    A = ngp.make_operator("denoise", shape=x.shape)
    y = A.measure(x, noise_std=0.1, seed=2)
    before = y.copy()
    rec = ngp.reconstruct(y, A, "tv", steps=200, seed=0, device="cpu")
    np.testing.assert_array_equal(y, before)
    assert rec.image.shape == x.shape
    assert psnr(x, rec.image) > psnr(x, y) + 6, (psnr(x, rec.image), psnr(x, y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["denoise", "inpaint", "mri"])
def test_pixelwise_tv_on_cuda_matches_the_cpu(kind, tile):
    params = {"denoise": {}, "inpaint": {"seed": 0}, "mri": {"seed": 0, "acceleration": 4}}
    A = ngp.make_operator(kind, shape=tile.shape, **params[kind])
    y = A.measure(tile, noise_std=0.05, seed=0)
    cpu = ngp.reconstruct(y, A, "tv", steps=100, seed=0, device="cpu")
    gpu = ngp.reconstruct(y, A, "tv", steps=100, seed=0, device="cuda")
    assert gpu.params["lam"] == pytest.approx(cpu.params["lam"])
    np.testing.assert_allclose(gpu.image, cpu.image, atol=2e-3)


@pytest.mark.parametrize("kind", ["denoise", "inpaint", "blur"])
def test_a_zero_weight_is_least_squares_not_nan(kind):
    # lam = 0 once gave 0 / 0 in the dual projection (inpainting diverged to NaN)
    x = rectangles(16)
    # (a zero boundary: the fit below applies A to the result, which the unknown border's
    # solvers estimate beyond the frame too)
    blur = {"sigma": 1.0, "boundary": "zero"}
    A = ngp.make_operator(kind, shape=x.shape, **(blur if kind == "blur" else {}))
    y = A.measure(x, noise_std=0.01, seed=0)
    rec = ngp.reconstruct(y, A, "tv", lam=0.0, steps=300, device="cpu")
    assert np.all(np.isfinite(rec.image))
    fit = np.abs(A.measure(rec.image) - y).max()  # measure() without noise: A applied
    assert fit < 0.05, fit


@pytest.mark.parametrize("kind", ["denoise", "inpaint"])
def test_the_pixelwise_weight_search_is_short_and_chooses_as_a_full_one(kind, tile):
    A = ngp.make_operator(kind, shape=tile.shape, **({"seed": 0} if kind == "inpaint" else {}))
    y = A.measure(tile, noise_std=0.1 if kind == "denoise" else 0.05, seed=0)
    short = ngp.reconstruct(y, A, "tv", seed=0, device="cpu", rule="holdout")
    full = ngp.reconstruct(y, A, "tv", seed=0, device="cpu", search_steps=300, rule="holdout")
    assert short.params["search_iterations"] <= tv.PIXELWISE_SEARCH_STEPS
    assert full.params["search_iterations"] > tv.PIXELWISE_SEARCH_STEPS  # the search was cut
    assert short.params["lam"] == full.params["lam"]
    assert abs(psnr(tile, short.image) - psnr(tile, full.image)) < 0.05
