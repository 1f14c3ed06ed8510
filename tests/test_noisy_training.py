"""Score priors learned from noisy measurements alone (issue 36): SURE, training, denoising."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior._noisy_training import (
    NoisyPatches,
    held_out_psnr,
    split_counts,
    sure,
    to_solver_units,
)
from napari_genprior.priors import ScoreUNet
from napari_genprior.solvers._sure import variance_map
from napari_genprior.synthetic import nuclei_images


def _photon_field(photons: float, seed: int, n: int = 1, side: int = 128) -> tuple:
    """Procedural nuclei (clean, in [0, 1]) and their Poisson counts at ``photons``."""
    clean = nuclei_images(n, shape=(side, side), seed=seed).astype(np.float64)
    counts = np.random.default_rng(seed).poisson(photons * clean).astype(np.float32)
    return (clean[0], counts[0]) if n == 1 else (clean, counts)


class _Smooth(torch.nn.Module):
    """A fixed denoiser for the SURE checks: a 3x3 mean, mixed with the input by how noisy
    the std map says the pixel is (so it uses the map, as the trained network may)."""

    def forward(self, x, s):
        m = torch.nn.functional.avg_pool2d(x[:, None], 3, 1, 1, count_include_pad=False)[:, 0]
        w = s / (s + 0.1)
        return w * m + (1 - w) * x


def test_sure_estimates_the_error_against_the_clean_image_it_never_sees():
    """On Poisson-like heteroscedastic Gaussian noise of the model's variance, SURE's mean
    matches the true squared error of a denoiser that reads the noise map, whether noise is
    added or not (the divergence passes through the map: without that it would not)."""
    clean = torch.from_numpy(nuclei_images(16, shape=(64, 64), seed=3).astype(np.float32))
    alpha, beta = 0.04, 1e-3
    gen = torch.Generator().manual_seed(0)
    v_true = alpha * clean + beta
    y = clean + v_true.sqrt() * torch.randn(clean.shape, generator=gen)
    model = torch.tensor([[alpha, beta]] * len(y))
    G = _Smooth()
    for extra in (0.0, 0.05**2):
        added = torch.full_like(y, extra)
        gen = torch.Generator().manual_seed(1)
        est = float(sure(G, y, model, added, gen).mean())
        gen = torch.Generator().manual_seed(1)  # the same noise draw, to compute the truth
        z = y + added.sqrt() * torch.randn(y.shape, generator=gen)
        s = (variance_map(z, alpha, beta) + added).sqrt()
        truth = float((G(z, s) - clean).pow(2).mean())
        assert abs(est - truth) < 0.1 * truth, (extra, est, truth)


@pytest.mark.parametrize(
    "alpha, beta, level, bias, spread, correlation",
    [
        (1 / 20, (1 / 20) ** 2, 1.0, 0.02, 0.05, 0.02),
        (0.0, 0.03**2, 1.0, 0.02, 0.05, 0.02),
        (1 / 5, (1 / 5) ** 2, 0.1, 0.03, 0.25, 0.04),
    ],
    ids=["photon counts with read noise", "Gaussian noise", "dark, read noise dominates"],
)
def test_a_split_gives_two_independent_unbiased_measurements(
    alpha, beta, level, bias, spread, correlation
):
    """The training loss's premise: both parts of a split measurement are unbiased for the
    clean image, with the variances the model says, and their noises are uncorrelated (else
    Noise2Noise would learn to copy the noise). Photon counts (20 at the brightest, 1 e- read
    noise: small counts, thinned exactly), Gaussian noise (large counts, normal thinning) and a
    dark field (at most 0.5 photoelectrons, 1 e- read noise: 15% of the counts fall below zero).
    In the dark the read noise is not the Poisson counts the thinning takes it for, so the
    variances and the correlation hold more loosely there; but the parts must stay unbiased:
    negative counts clamped to zero biased both upwards by 0.06 and 0.07 of the noise's std
    (and correlated them by -0.066), which put a bright haze on the background of real nuclei
    denoised at 5 photons (0.8 dB)."""
    clean = level * torch.from_numpy(nuclei_images(8, shape=(64, 64), seed=2).astype(np.float32))
    gen = torch.Generator().manual_seed(0)
    if alpha:
        counts = torch.poisson(clean / alpha, generator=gen)
        y = alpha * (counts + torch.randn(clean.shape, generator=gen) * beta**0.5 / alpha)
    else:
        y = clean + beta**0.5 * torch.randn(clean.shape, generator=gen)
    model = torch.tensor([[alpha, beta]] * len(y))
    p = torch.full((len(y),), 0.7)
    u1, u2 = split_counts(y, model, p, gen)
    e1, e2 = u1 - clean, u2 - clean
    v = alpha * clean + beta
    assert abs(float(e1.mean())) < bias * float(v.mean().sqrt())
    assert abs(float(e2.mean())) < bias * float(v.mean().sqrt())
    assert float(e1.pow(2).mean()) == pytest.approx(float((v / 0.7).mean()), rel=spread)
    assert float(e2.pow(2).mean()) == pytest.approx(float((v / 0.3).mean()), rel=spread)
    corr = float((e1 * e2).mean()) / float(e1.pow(2).mean() * e2.pow(2).mean()) ** 0.5
    assert abs(corr) < correlation, corr
    # a split that copied the noise into both parts would show it: the check can fail
    assert float((e1 * (y - clean)).mean()) > 0.5 * float(v.mean())


def test_measurements_go_into_the_units_a_solver_uses():
    clean, counts = _photon_field(20, seed=0)
    y, v, info = to_solver_units(100 + 2.0 * counts, camera={"offset": 100, "gain": 2.0})
    assert np.quantile(y, 0.999) == pytest.approx(1.0, rel=1e-3)
    scale = info["scale"]  # photoelectrons at the 99.9th percentile
    # Poisson: the variance of y is its mean over the scale
    assert info["alpha"] == pytest.approx(1 / scale, rel=0.25)
    assert v.shape == y.shape and np.all(v > 0)
    with pytest.raises(ValueError, match="no signal above"):
        to_solver_units(np.zeros((64, 64)), camera=None)


def test_held_out_patches_are_never_trained_on():
    ys = [np.arange(256 * 96, dtype=np.float32).reshape(256, 96)]
    P = NoisyPatches(ys, [(0.01, 1e-4)], (32, 32), seed=0)
    held = set(P.held_out_tiles[:, 0].ravel().tolist())
    seen = P.sample(500)[:, 0]
    assert P.held_out_separate and not held & set(seen.ravel().tolist())
    assert np.allclose(P.sample(4)[:, 1:], np.array([0.01, 1e-4])[None, :, None, None])


def test_a_prior_learned_from_noisy_images_alone_denoises_them():
    """Trained on nothing but Poisson counts (20 photons at the brightest) for half a minute,
    the prior denoises a measurement of the same kind it never saw; the card says how it was
    learned; the loss curve has the held-out PSNR, which rises."""
    _, counts = _photon_field(20, seed=0, n=4)
    seen = []
    G = ngp.train_prior(
        list(counts),
        kind="score",
        noisy=True,
        epochs=6,
        channels=8,
        patches_per_epoch=256,
        batch_size=16,
        patch_size=48,
        lr=3e-3,
        device="cpu",
        seed=0,
        callback=lambda epoch, losses, samples: seen.append(losses),
    )
    assert isinstance(G, ScoreUNet)
    card = G.card["noisy_training"]
    assert card["held_out"] == "separate patches" and 0.03 < card["sigma"] < 0.3
    assert G.card["data"] == "user's noisy measurements"
    held = [u["held-out PSNR"] for u in seen]
    assert held[-1] > held[0] + 2, held
    clean, test = _photon_field(20, seed=9)
    A = ngp.make_operator("denoise", shape=test.shape)
    rec = ngp.reconstruct(test, A, method="score", prior=G, device="cpu", camera=None)
    assert rec.params["direct"] is True
    ours = ngp.metrics.psnr(clean, rec.image / 20, 1.0)
    raw = ngp.metrics.psnr(clean, test / 20, 1.0)
    # a minute of training on four small images is far from a good denoiser (a 3x3 mean scores
    # 28.9 dB here): this checks that it learned to denoise, not how well (bench self-supervised)
    assert ours > raw + 2, (ours, raw)
    np.testing.assert_array_equal(test, _photon_field(20, seed=9)[1])  # the input untouched


def test_noisy_training_refuses_what_it_cannot_do():
    _, counts = _photon_field(20, seed=0)
    with pytest.raises(ValueError, match="use kind='score'"):
        ngp.train_prior(counts, kind="vae", noisy=True, epochs=1)
    with pytest.raises(ValueError, match="needs noisy=True"):
        ngp.train_prior(counts, kind="score", operator=ngp.make_operator("denoise", (8, 8)))
    mask = ngp.make_operator("inpaint", shape=counts.shape, fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="not supported"):
        ngp.train_prior(counts, kind="score", noisy=True, operator=mask, epochs=1)
    stack_blur = ngp.make_operator("blur", shape=(4, *counts.shape), sigma=2.0)
    with pytest.raises(ValueError, match="2D blur of one plane"):
        ngp.train_prior(counts, kind="score", noisy=True, operator=stack_blur, epochs=1)


def test_score_anneals_down_to_the_noise_a_noisy_prior_learned_from():
    G = ScoreUNet(channels=4)
    G.card["noisy_training"] = {"sigma": 0.05}
    x = nuclei_images(1, shape=(64, 64), seed=1)[0]
    A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.5, seed=0)
    y = A.measure(x, noise_std=0.02, seed=0)
    rec = ngp.reconstruct(y, A, method="score", prior=G, steps=5, device="cpu")
    assert rec.params["chosen_sigma"] >= 0.05


class _EdgeBrightening(ScoreUNet):
    """A denoiser that brightens its input's outer frame by 20% and leaves the rest as it is
    (a network's edge artefact, such as zero padding makes)."""

    def forward(self, x, sigma):
        gain = torch.ones_like(x)
        gain[..., :3, :] = gain[..., -3:, :] = gain[..., :, :3] = gain[..., :, -3:] = 1.2
        return x * gain


def test_deconvolution_under_a_noisy_prior_keeps_the_unknown_border_in_check():
    """The margin beyond the field of view, which the data barely constrain, is kept within
    the range of the image inside: a denoiser that brightens it does not feed on itself from
    step to step (without the bound: 5.2 at most, mean error 0.13; with it 2.4 and 0.08)."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:96, :96]
    field = 0.1 + 2.0 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 32.0)
    field += 0.8 * np.exp(-((yy - 60) ** 2 + (xx - 55) ** 2) / 72.0)
    inner = (slice(22, 86), slice(22, 86))  # a bright spot just outside a corner
    blurred = gaussian_filter(field, 2.0, mode="reflect", truncate=6.0)[inner]
    y = (blurred + np.random.default_rng(0).normal(0, 0.01, blurred.shape)).astype(np.float32)
    G = _EdgeBrightening(channels=4)
    G.card["noisy_training"] = {"sigma": 0.01}
    A = ngp.make_operator("blur", shape=y.shape, sigma=2.0)
    rec = ngp.reconstruct(y, A, method="score", prior=G, steps=60, device="cpu", holdout=0.0)
    assert np.isfinite(rec.image).all()
    assert np.abs(rec.image).max() < 2 * field.max()
    assert np.abs(rec.image - field[inner]).mean() < 0.1


def test_the_bundled_nuclei_score_deconvolves_a_crop_of_a_blurred_field():
    """The bundled prior learned from noisy real nuclei, through ``score`` with a camera, on a
    crop of a larger blurred field (no inverse crime): 26.7 dB against the measurement's 22.7
    (tv 27.8: these procedural nuclei are not what it learned; bench self-supervised has the
    real ones)."""
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import peak_signal_noise_ratio as psnr

    x = nuclei_images(1, shape=(96, 96), seed=3)[0].astype(np.float64)
    inner = (slice(16, 80), slice(16, 80))
    rng = np.random.default_rng(0)
    b = gaussian_filter(x, 2.0, mode="reflect", truncate=6.0)
    y = (rng.poisson(100 * b) + rng.normal(0, 1, b.shape))[inner].astype(np.float32)
    A = ngp.make_operator("blur", shape=y.shape, sigma=2.0)
    cam = {"offset": 0, "gain": 1, "read_noise": 1.0}
    rec = ngp.reconstruct(y, A, method="score", prior="nuclei-score", camera=cam, device="cpu")
    assert rec.params["lam"] == 0.5 and rec.params["chosen_sigma"] >= 0.025
    before = psnr(x[inner], y / 100, data_range=1)
    assert psnr(x[inner], rec.image / 100, data_range=1) > before + 3


def test_a_noisy_prior_weighs_more_in_score_by_default():
    x = nuclei_images(1, shape=(32, 32), seed=1)[0]
    A = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    y = A.measure(x, noise_std=0.02, seed=0)
    G = ScoreUNet(channels=4)
    assert ngp.reconstruct(y, A, method="score", prior=G, steps=2).params["lam"] == 0.1
    G.card["noisy_training"] = {"sigma": 0.02}
    assert ngp.reconstruct(y, A, method="score", prior=G, steps=2).params["lam"] == 0.5
    rec = ngp.reconstruct(y, A, method="score", prior=G, steps=2, lam=0.2)
    assert rec.params["lam"] == 0.2


def test_held_out_psnr_is_reproducible():
    _, counts = _photon_field(20, seed=0, side=192)
    y, _, info = to_solver_units(counts, camera=None)
    P = NoisyPatches([y], [(info["alpha"], info["beta"])], (32, 32), seed=0)
    G = ScoreUNet((32, 32), channels=4)
    tiles = P.held_out("cpu")
    assert held_out_psnr(G, tiles, 0) == held_out_psnr(G, tiles, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_noisy_training_and_direct_denoising_run_on_cuda():
    """The split's binomial draws come from the CPU generator of the training loop: on CUDA
    the training and the denoising under the prior must run all the same."""
    _, counts = _photon_field(20, seed=0, n=2, side=96)
    G = ngp.train_prior(
        list(counts),
        kind="score",
        noisy=True,
        epochs=1,
        channels=4,
        patches_per_epoch=32,
        batch_size=8,
        patch_size=32,
        device="cuda",
        seed=0,
    )
    A = ngp.make_operator("denoise", shape=counts[0].shape)
    rec = ngp.reconstruct(counts[0], A, method="score", prior=G, device="cuda", camera=None)
    assert rec.params["direct"] is True and np.isfinite(rec.image).all()


def test_direct_denoising_takes_the_noise_map_from_a_known_camera():
    """With the camera given (photon counts), the denoiser is told the exact Poisson-Gaussian
    noise of the photoelectrons; without one, the model fitted to the measurement."""
    G = ScoreUNet(channels=4)
    G.card["noisy_training"] = {"sigma": 0.05}
    _, counts = _photon_field(20, seed=0, side=64)
    raw = 100 + 2.0 * counts
    A = ngp.make_operator("denoise", shape=counts.shape)
    cam = {"offset": 100, "gain": 2.0, "read_noise": 1.5}
    rec = ngp.reconstruct(raw, A, method="score", prior=G, camera=cam, device="cpu")
    model, scale = rec.params["noise_model"], rec.params["scale"]
    assert model["from"] == "camera"
    assert model["alpha"] == pytest.approx(1 / scale) and 15 < scale < 35  # photoelectrons
    assert model["beta"] == pytest.approx(1.5**2 / scale**2)
    fitted = ngp.reconstruct(counts, A, method="score", prior=G, camera=None, device="cpu")
    assert fitted.params["noise_model"]["from"] == "fitted"
    with pytest.raises(ValueError, match="read_variance"):
        ngp.reconstruct(counts, A, method="score", prior=G, camera=None, read_variance=-1.0)


def test_a_prior_learned_from_photon_counts_denoises_a_crop_in_its_own_units():
    """A prior that learned from photoelectrons at some level denoises a crop (or another
    plane) of the same acquisition in those units, not as if the crop, dimmer or brighter at
    its 99.9th percentile, were another sample: the crop's denoising is the whole image's,
    cropped (away from the crop's border). Without the recorded level it is not; a record far
    brighter than the prior learned from is denoised on its own scale. (The prior here learned
    from less noisy measurements, so the records are denoised whole, not from random splits
    that would differ between the crop and the whole; and by the prior alone, not combined
    with ``tv``, whose weight is chosen image by image.)"""
    from napari_genprior._noisy_training import noisy_sampler

    cam = {"offset": 0.0, "gain": 1.0, "read_noise": 1.0}
    _, counts = _photon_field(20, seed=3, side=192)
    counts = counts + np.random.default_rng(3).normal(0, 1, counts.shape).astype(np.float32)
    _, _, noise = noisy_sampler([counts], (48, 48), None, cam, 0)
    assert noise["scale"] == pytest.approx(float(np.quantile(counts, 0.999)), rel=1e-3)
    torch.manual_seed(0)
    G = ScoreUNet(channels=8)
    G.card["noisy_training"] = {"sigma": 0.02, "scale": noise["scale"]}
    crop = (slice(32, 160), slice(48, 176))
    inner = (slice(40, 88), slice(40, 88))  # 40 px from the crop's border

    def denoise(y):
        A = ngp.make_operator("denoise", shape=y.shape)
        return ngp.reconstruct(
            y, A, method="score", prior=G, camera=cam, device="cpu", combine=False, wiener=False
        )

    whole, part = denoise(counts), denoise(counts[crop].copy())
    assert part.params["scale"] != pytest.approx(whole.params["scale"], rel=0.02)
    assert part.params["denoised_at_scale"] == pytest.approx(noise["scale"])
    assert part.params["splits"] == whole.params["splits"] == 0
    np.testing.assert_allclose(part.image[inner], whole.image[crop][inner], rtol=1e-3, atol=1e-3)
    del G.card["noisy_training"]["scale"]  # each on its own scale, as before: they differ
    whole, part = denoise(counts), denoise(counts[crop].copy())
    assert np.abs(part.image[inner] - whole.image[crop][inner]).max() > 0.05
    G.card["noisy_training"]["scale"] = noise["scale"]
    bright = denoise(10 * counts)  # ten times the exposure: not the level it learned
    assert bright.params["denoised_at_scale"] == pytest.approx(bright.params["scale"])


class _Told(ScoreUNet):
    """An identity "denoiser" that records the noise std it is told at each call (in a list
    outside it: reconstruct may work on a copy of the prior)."""

    told: list[float] = []

    def forward(self, x, sigma):
        _Told.told.append(float(torch.as_tensor(sigma).pow(2).mean().sqrt()))
        return x


def test_a_record_at_the_level_the_prior_learned_is_denoised_from_parts_of_splits():
    """The prior learned to denoise parts of split measurements, noisier than the whole: a
    record at the level it learned from is split (SPLITS times, keeping TEST_SPLIT of its
    photons), each part denoised at its own noise and the estimates averaged (unbiased: an
    identity denoiser gives back the record, on average); a record noisier than what the prior
    learned from is denoised whole, in the 8 orientations."""
    from napari_genprior.solvers.score import SPLITS, TEST_SPLIT

    cam = {"offset": 0.0, "gain": 1.0, "read_noise": 1.0}
    _, counts = _photon_field(20, seed=4, side=96)
    counts = counts + np.random.default_rng(4).normal(0, 1, counts.shape).astype(np.float32)
    _, _, info = to_solver_units(counts, cam)
    G = _Told(channels=4)
    A = ngp.make_operator("denoise", shape=counts.shape)
    for learned, passes in ((info["sigma"], SPLITS), (0.5 * info["sigma"], 8)):
        _Told.told.clear()
        G.card["noisy_training"] = {"sigma": learned}
        rec = ngp.reconstruct(
            counts,
            A,
            method="score",
            prior=G,
            camera=cam,
            device="cpu",
            combine=False,
            wiener=False,
        )
        assert len(_Told.told) == passes and rec.params["splits"] == (SPLITS if passes > 8 else 0)
        own = info["sigma"] / (TEST_SPLIT**0.5 if passes > 8 else 1)
        assert np.allclose(_Told.told, own, rtol=0.1), (_Told.told, own)
        assert rec.image.mean() == pytest.approx(counts.mean(), rel=0.01)
        if passes > 8:  # the parts' noise, averaged over SPLITS: less than one part's, not none
            rest = np.abs(rec.image - counts).mean() / np.abs(counts - counts.mean()).mean()
            assert 0.02 < rest < 0.5, rest
        else:
            np.testing.assert_allclose(rec.image, counts, rtol=1e-4, atol=1e-3)
    # a stop after the third part returns the average of the three (a GUI's cancel)
    _Told.told.clear()
    G.card["noisy_training"] = {"sigma": info["sigma"]}
    steps = []

    def stop(step, loss, image):
        steps.append(step)
        return step < 3

    rec = ngp.reconstruct(
        counts, A, method="score", prior=G, camera=cam, callback=stop, combine=False, wiener=False
    )
    assert steps == [1, 2, 3] and len(_Told.told) == 3 and rec.image.shape == counts.shape
    assert rec.image.mean() == pytest.approx(counts.mean(), rel=0.02)
