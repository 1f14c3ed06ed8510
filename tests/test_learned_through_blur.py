"""Score priors learned from blurred noisy measurements (issue 36): through the blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import napari_genprior as ngp
from napari_genprior.metrics import psnr
from napari_genprior.priors import ScoreUNet
from napari_genprior.priors.score import learned_through, same_blur
from napari_genprior.synthetic import nuclei_images

CAMERA = {"offset": 0.0, "gain": 1.0, "read_noise": 1.0}


def _blurred_record(seed: int, side: int = 128, photons: float = 100) -> tuple:
    """Procedural nuclei (clean, in [0, 1]) and a camera's record of them blurred (sigma 2):
    a crop of a larger blurred field (light from outside reaches its border), Poisson at
    ``photons`` plus read noise 1 e-."""
    big = nuclei_images(1, shape=(side + 32, side + 32), seed=seed)[0].astype(np.float64)
    inner = (slice(16, 16 + side), slice(16, 16 + side))
    rng = np.random.default_rng(seed)
    b = gaussian_filter(big, 2.0, mode="reflect", truncate=6.0)
    y = rng.poisson(photons * b) + rng.normal(0, 1, b.shape)
    return big[inner], y[inner].astype(np.float32)


class _Identity(ScoreUNet):
    """A "denoiser" that gives its input back and counts its calls (in a list outside it:
    reconstruct may work on a copy of the prior)."""

    calls: list[int] = []

    def forward(self, x, sigma):
        _Identity.calls.append(1)
        return x


def _through(G: ScoreUNet, sigma: float = 2.0) -> ScoreUNet:
    G.card["noisy_training"] = {
        "sigma": 0.05,
        "through": {"kind": "blur", "sigma": [sigma, sigma], "boundary": "unknown"},
    }
    return G


def test_a_prior_learned_through_a_blur_denoises_then_deconvolves():
    """Trained on nothing but blurred photon counts, the prior knows the images as recorded;
    ``score`` denoises a record it never saw under it, then deconvolves: sharper than the
    record, closer to the scene than ``tv`` on the record itself; the input is left as it
    was."""
    _, train = _blurred_record(seed=0, side=160)
    A_train = ngp.make_operator("blur", shape=train.shape, sigma=2.0)
    G = ngp.train_prior(
        train,
        kind="score",
        noisy=True,
        operator=A_train,
        camera=CAMERA,
        epochs=6,
        channels=8,
        patches_per_epoch=256,
        batch_size=16,
        patch_size=48,
        lr=3e-3,
        device="cpu",
        seed=0,
    )
    through = learned_through(G)
    assert through == {"kind": "blur", "sigma": [2.0, 2.0], "boundary": "unknown"}
    clean, y = _blurred_record(seed=5)
    before = y.copy()
    A = ngp.make_operator("blur", shape=y.shape, sigma=2.0)
    rec = ngp.reconstruct(y, A, method="score", prior=G, camera=CAMERA, device="cpu")
    assert rec.params["denoised_then"] == "tv" and rec.params["tv"]["rule"] == "early"
    np.testing.assert_array_equal(y, before)
    tv = ngp.reconstruct(y, A, method="tv", camera=CAMERA, device="cpu")
    ours, theirs = psnr(clean, rec.image / 100, 1.0), psnr(clean, tv.image / 100, 1.0)
    raw = psnr(clean, y / 100, 1.0)
    assert ours > raw + 2 and ours > theirs, (ours, theirs, raw)


def test_denoising_then_deconvolving_reports_progress_and_stops():
    """Progress counts the denoising's passes, the part that scores the deconvolution, then
    FISTA's steps, on one scale; a stop while denoising returns the denoised record, of the
    image's shape, not deconvolved."""
    _, y = _blurred_record(seed=2, side=64)
    A = ngp.make_operator("blur", shape=y.shape, sigma=2.0)
    G = _through(_Identity(channels=4))
    seen = []
    _Identity.calls.clear()
    rec = ngp.reconstruct(
        y,
        A,
        method="score",
        prior=G,
        camera=CAMERA,
        callback=lambda step, loss, image: seen.append(step),
    )
    # the denoising's passes, then the scoring part's 8 orientations, then FISTA's steps
    passes = len(_Identity.calls) - 8
    assert passes in (8, 16) and seen == list(range(1, len(seen) + 1)) and len(seen) > passes + 1
    assert rec.params["tv"]["scored_against"] == "the other part of a split"
    assert rec.params["tv"]["iterations"] >= 1 and rec.image.shape == y.shape

    def stop(step, loss, image):
        return step < 2

    _Identity.calls.clear()
    early = ngp.reconstruct(y, A, method="score", prior=G, camera=CAMERA, callback=stop)
    assert early.cancelled and len(_Identity.calls) == 2 and "tv" not in early.params
    assert early.image.shape == y.shape  # the identity's average: close to the record
    assert abs(float(early.image.mean()) - float(y.mean())) < 0.02 * float(y.mean())


def test_a_prior_learned_through_a_blur_is_used_for_that_blur_only():
    G = _through(_Identity(channels=4))
    x = nuclei_images(1, shape=(32, 32), seed=1)[0]
    other = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    with pytest.raises(ValueError, match=r"through a 2D blur with sigma \[2.0, 2.0\]"):
        ngp.reconstruct(other.measure(x, noise_std=0.02, seed=0), other, method="score", prior=G)
    mask = ngp.make_operator("inpaint", shape=x.shape, fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="not a 'inpaint' operator"):
        ngp.reconstruct(mask.measure(x, seed=0), mask, method="score", prior=G)
    # the images as recorded: denoising them is what it learned
    A = ngp.make_operator("denoise", shape=x.shape)
    rec = ngp.reconstruct(A.measure(x, noise_std=0.05, seed=0), A, method="score", prior=G)
    assert rec.params["direct"] is True
    two = ngp.make_operator("blur", (8, 8), sigma=2).spec()
    assert same_blur({"kind": "blur", "sigma": [2, 2]}, two)
    assert not same_blur({"kind": "blur", "sigma": [2, 2]}, {"kind": "blur", "psf": "x"})


def test_advice_for_a_prior_learned_through_a_blur():
    from napari_genprior import advice as ngp_advice

    advice = ngp_advice.recommend("blur", prior=_through(ScoreUNet(channels=4)))
    assert advice.method == "score" and "through their blur" in advice.why


def test_the_card_keeps_the_blur_through_a_save(tmp_path):
    G = _through(ScoreUNet(channels=4), sigma=1.5)
    G.save(tmp_path / "p.safetensors")
    H = ngp.load_prior(tmp_path / "p.safetensors")
    assert learned_through(H) == {"kind": "blur", "sigma": [1.5, 1.5], "boundary": "unknown"}
    assert torch.equal(next(H.parameters()), next(G.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_through_a_blur_and_deconvolving_run_on_cuda():
    """The splits' draws come from CPU generators; on CUDA the training through the blur, the
    denoising, the scoring split and FISTA must run all the same."""
    _, y = _blurred_record(seed=1, side=96)
    A = ngp.make_operator("blur", shape=y.shape, sigma=2.0)
    G = ngp.train_prior(
        y,
        kind="score",
        noisy=True,
        operator=A,
        camera=CAMERA,
        epochs=1,
        channels=4,
        patches_per_epoch=32,
        batch_size=8,
        patch_size=32,
        device="cuda",
        seed=0,
    )
    rec = ngp.reconstruct(y, A, method="score", prior=G, camera=CAMERA, device="cuda")
    assert rec.params["denoised_then"] == "tv" and np.isfinite(rec.image).all()
