"""``tv`` on ``denoise`` chooses its weight and its iterate by Stein's unbiased risk estimate
(solvers/_sure.py): a better denoiser than the held-out rule and than scikit-image's TV at its
default, on real nuclei tiles with Gaussian and Poisson noise, with a fitted noise model."""

import numpy as np
import pytest
import torch  # first, before anything that may import Qt (conftest sets one thread)
from skimage.restoration import denoise_tv_chambolle

import napari_genprior as ngp
from genprior_bench._common import real_nuclei
from napari_genprior.solvers import _sure, tv

psnr = ngp.metrics.psnr


@pytest.fixture(scope="module")
def tiles():
    return real_nuclei(4)[0]


def _noisy(tile, noise, seed):
    A = ngp.make_operator("denoise", shape=tile.shape)
    kw = {"noise_std": 0.1} if noise == "gaussian" else {"photons": 20}
    return A, A.measure(tile, seed=seed, **kw)


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_sure_denoises_real_tiles_better_than_the_heldout_rule_and_scikit_image(tiles, noise):
    gains, over_skimage = [], []
    for j, tile in enumerate(tiles):
        A, y = _noisy(tile, noise, j)
        rec = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
        assert rec.params["rule"] == "sure" and rec.params["lam"] in rec.params["lam_grid"]
        held = ngp.reconstruct(y, A, "tv", device="cpu", seed=0, rule="holdout")
        assert "rule" not in held.params or held.params["rule"] != "sure"
        ours = psnr(tile, rec.image)
        gains.append(ours - psnr(tile, held.image))
        over_skimage.append(ours - psnr(tile, denoise_tv_chambolle(y)))
    # measured (dB): gaussian +3.1 +1.4 +3.6 +1.8 over held out, +0.5 +1.3 +0.6 +1.5 over
    # scikit-image; poisson +2.0 +2.4 +2.6 +2.4 and +1.2 +4.7 +0.8 +2.2
    assert np.median(gains) > 1.0 and min(gains) > 0, gains
    assert np.median(over_skimage) > 0.3 and min(over_skimage) > -0.5, over_skimage


def test_the_search_stops_early_and_keeps_an_early_iterate(tiles):
    A, y = _noisy(tiles[0], "gaussian", 0)
    rec = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    # the chosen iterate is early (measured: 10 of 300 allowed), and no weight ran long
    assert rec.params["iterations"] < 50
    assert max(rec.params["sure_iterations"]) <= 60 and len(rec.history) <= 60
    # the same weight run to its minimum is a worse denoiser than the iterate SURE kept
    full = ngp.reconstruct(y, A, "tv", device="cpu", lam=rec.params["lam"])
    assert psnr(tiles[0], rec.image) > psnr(tiles[0], full.image) + 0.5


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_the_noise_model_fits_gaussian_and_poisson_noise(tiles, noise):
    tile = tiles[1]
    A, y = _noisy(tile, noise, 1)
    alpha, beta = _sure.noise_model(torch.as_tensor(y), 2)
    if noise == "gaussian":  # std 0.1 everywhere
        assert alpha * tile.max() < 0.1 * beta and abs(np.sqrt(beta) - 0.1) < 0.01
    else:  # 20 photons at the brightest pixel: variance x * max / 20 (measured 0.0517)
        assert abs(alpha - tile.max() / 20) < 0.2 * tile.max() / 20, alpha
        assert beta < 0.1 * alpha * tile.mean()


def test_a_chunked_search_chooses_as_a_batched_one(tiles, monkeypatch):
    A, y = _noisy(tiles[2], "poisson", 2)
    batched = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    monkeypatch.setattr(tv, "SEARCH_BATCH_VOXELS", 1)  # one weight (and its probe) at a time
    chunked = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    assert chunked.params["lam"] == batched.params["lam"]
    np.testing.assert_allclose(chunked.image, batched.image, atol=1e-5)


def test_a_cancelled_search_returns_the_best_iterate_so_far(tiles):
    A, y = _noisy(tiles[0], "gaussian", 0)
    run = ngp.iter_reconstruct(y, A, method="tv", device="cpu", seed=0, steps=5000)
    next(run)
    for _ in range(4):
        run.send(None)
    with pytest.raises(StopIteration) as stop:
        run.send(False)
    rec = stop.value.value
    assert rec.cancelled and np.isfinite(rec.image).all()
    assert psnr(tiles[0], rec.image) > psnr(tiles[0], y) + 3  # 5 steps already denoise


def test_rule_sure_refuses_other_operators_and_unknown_rules_are_refused(tiles):
    A = ngp.make_operator("inpaint", shape=tiles[0].shape, seed=0)
    y = A.measure(tiles[0], noise_std=0.05, seed=0)
    with pytest.raises(ValueError, match="needs a denoising problem"):
        ngp.reconstruct(y, A, "tv", device="cpu", rule="sure")
    with pytest.raises(ValueError, match="rule must be"):
        ngp.reconstruct(y, A, "tv", device="cpu", rule="oracle")
    assert ngp.reconstruct(y, A, "tv", device="cpu").params.get("rule") != "sure"


def test_going_on_with_the_best_three_weights_chooses_as_all_eight(tiles, monkeypatch):
    A, y = _noisy(tiles[0], "poisson", 0)  # chosen after the pruning (measured: step 19)
    pruned = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    assert pruned.params["iterations"] > 10  # past the first check, where the pruning happens
    h = pruned.history  # the least estimated risk so far: it never rises, pruned or not
    assert all(b <= a for a, b in zip(h, h[1:])), h
    monkeypatch.setattr(_sure, "KEEP", 100)
    full = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    assert pruned.params["lam"] == full.params["lam"]
    assert abs(psnr(tiles[0], pruned.image) - psnr(tiles[0], full.image)) < 0.1


def test_one_weight_at_a_time_goes_from_the_largest_and_stops_the_rest_early(tiles, monkeypatch):
    monkeypatch.setattr(tv, "SEARCH_BATCH_VOXELS", 1)
    A, y = _noisy(tiles[1], "gaussian", 1)
    rec = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    # 8 weights; none creeps on towards its minimum (measured: 20 steps each at most)
    assert len(rec.history) <= 8 * 40 and max(rec.params["sure_iterations"]) <= 40


def test_a_1d_signal_is_denoised_along_its_one_axis():
    x = np.sin(np.linspace(0, 20, 400)).astype(np.float32)[None]
    A = ngp.make_operator("denoise", shape=x.shape)
    y = A.measure(x, noise_std=0.1, seed=0)
    rec = ngp.reconstruct(y, A, "tv", device="cpu", seed=0)
    held = ngp.reconstruct(y, A, "tv", device="cpu", seed=0, rule="holdout")
    assert abs(rec.params["noise_std"] - 0.1) < 0.015, rec.params["noise_std"]
    # measured: 35.5 dB against 30.7 (the noisy signal: 26.1)
    assert psnr(x, rec.image, 2.0) > psnr(x, held.image, 2.0) + 2


def test_noiseless_constant_and_tiny_images():
    A = ngp.make_operator("denoise", shape=(32, 32))
    rec = ngp.reconstruct(np.full((32, 32), 5, np.float32), A, "tv", device="cpu")
    assert np.abs(rec.image - 5).max() < 1e-4 and len(rec.history) <= 40  # stops at once
    tiny = ngp.make_operator("denoise", shape=(4, 4))  # too few pixels for a noise estimate
    y = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    assert ngp.reconstruct(y, tiny, "tv", device="cpu").params.get("rule") != "sure"
    with pytest.raises(ValueError, match="at least 64"):
        ngp.reconstruct(y, tiny, "tv", device="cpu", rule="sure")
