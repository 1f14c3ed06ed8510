"""Denoising under a prior learned from noisy data, combined with ``tv`` (issue 36): the weight
is chosen on a split of the measurement, whose parts carry independent noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.metrics import psnr
from napari_genprior.priors import ScoreUNet
from napari_genprior.synthetic import nuclei_images

CAMERA = {"offset": 0.0, "gain": 1.0, "read_noise": 0.0}
PHOTONS = 20


def _record(seed: int = 0, side: int = 96):
    clean = nuclei_images(1, shape=(side, side), seed=seed)[0].astype(np.float64)
    counts = np.random.default_rng(seed).poisson(PHOTONS * clean).astype(np.float32)
    return clean, counts


class _Identity(ScoreUNet):
    """Gives its noisy input back: no denoising at all."""

    def forward(self, x, sigma):
        return x


class _Knows(ScoreUNet):
    """Gives back the clean image, in its input's units (the ratio of their sums) and
    orientation (score turns its inputs): a perfect denoiser of this one scene."""

    clean: torch.Tensor

    def forward(self, x, sigma):
        from napari_genprior.solvers._score_direct import _turn

        turns = [_turn(_Knows.clean.to(x), t) for t in range(8)]
        c = max(turns, key=lambda c: float((c * x).sum()))
        return c * (x.sum() / c.sum())


def _denoise(prior, counts, **kw):
    prior.card["noisy_training"] = {"sigma": 0.05}
    A = ngp.make_operator("denoise", shape=counts.shape)
    return ngp.reconstruct(counts, A, method="score", prior=prior, camera=CAMERA, **kw)


def test_the_weight_follows_which_estimate_is_closer_to_the_clean_image():
    """A prior that does not denoise gets weight about 0 (the result is tv's), a perfect one
    about 1 (the result is the clean image): the split's other part, independent of the part
    both estimate from, scores them without a clean image."""
    clean, counts = _record()
    tv = ngp.reconstruct(
        counts, ngp.make_operator("denoise", shape=counts.shape), method="tv", camera=CAMERA
    )
    poor = _denoise(_Identity(channels=4), counts)
    assert poor.params["combined"]["prior_weight"] < 0.1
    assert psnr(clean, poor.image / PHOTONS, 1.0) > psnr(clean, tv.image / PHOTONS, 1.0) - 0.2
    _Knows.clean = torch.from_numpy(clean).float()
    good = _denoise(_Knows(channels=4), counts)
    assert good.params["combined"]["prior_weight"] > 0.9
    assert psnr(clean, good.image / PHOTONS, 1.0) > psnr(clean, tv.image / PHOTONS, 1.0) + 5
    alone = _denoise(_Identity(channels=4), counts, combine=False, wiener=False)
    assert "combined" not in alone.params and "wiener" not in alone.params
    np.testing.assert_allclose(alone.image, counts, rtol=1e-4, atol=1e-3)


def test_the_wiener_step_is_weighed_by_whether_it_improves_its_pilot():
    """The empirical Wiener filter (pilot: the mix) is kept by the weight a recorrupted split
    of the measurement gives it: fully where the pilot is ``tv``'s (a prior that does not
    denoise), beating ``tv``; not at all where the pilot is the clean image, which it would
    spoil. Without ``wiener`` the result is the mix as it was."""
    clean, counts = _record()

    def score(image):
        return psnr(clean, image / PHOTONS, 1.0)

    A = ngp.make_operator("denoise", shape=counts.shape)
    tv = score(ngp.reconstruct(counts, A, method="tv", camera=CAMERA).image)
    poor = _denoise(_Identity(channels=4), counts)
    assert poor.params["wiener"]["weight"] > 0.8 and poor.params["wiener"]["window"] == 16
    assert score(poor.image) > tv + 0.4
    unfiltered = _denoise(_Identity(channels=4), counts, wiener=False)
    assert "wiener" not in unfiltered.params and abs(score(unfiltered.image) - tv) < 0.2
    _Knows.clean = torch.from_numpy(clean).float()
    good = _denoise(_Knows(channels=4), counts)
    assert good.params["wiener"]["weight"] < 0.1 and score(good.image) > tv + 15
    alone = _denoise(_Identity(channels=4), counts, combine=False)
    assert alone.params["wiener"]["pilot"] == "the prior's estimate"
    assert score(alone.image) > score(counts) + 2  # the record, filtered under its own pilot


def test_a_stop_while_combining_returns_the_prior_alone_and_bad_options_are_refused():
    _, counts = _record(seed=1, side=64)
    steps = []

    def stop(step, loss, image):
        steps.append(step)
        return step < 10  # 8 orientations of the record, then the split's part

    rec = _denoise(_Identity(channels=4), counts, callback=stop)
    assert rec.cancelled and steps[-1] == 10 and "combined" not in rec.params
    np.testing.assert_allclose(rec.image, counts, rtol=1e-4, atol=1e-3)
    # a stop in the Wiener step's passes returns the mix as it was before it
    mix_steps = []
    mix = _denoise(
        _Identity(channels=4), counts, wiener=False, callback=lambda s, *_: mix_steps.append(s)
    )
    rec = _denoise(_Identity(channels=4), counts, callback=lambda s, *_: s < mix_steps[-1] + 2)
    assert rec.cancelled and "combined" in rec.params and "wiener" not in rec.params
    np.testing.assert_allclose(rec.image, mix.image, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="combine must be True or False"):
        _denoise(_Identity(channels=4), counts, combine="yes")
    with pytest.raises(TypeError, match="wiener must be True or False"):
        _denoise(_Identity(channels=4), counts, wiener=1)
