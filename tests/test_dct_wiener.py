"""The empirical Wiener filter in a sliding DCT (``solvers._dct_wiener``), which ``score``
applies after denoising under a prior learned from noisy data (issue 36)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_genprior.metrics import psnr
from napari_genprior.solvers._dct_wiener import dct_matrix, dct_wiener
from napari_genprior.synthetic import nuclei_images


def _direct(y, pilot, var, n):
    """The same filter computed window by window (unfold), not separably."""
    C = dct_matrix(n)
    B = torch.einsum("ai,bj->abij", C, C).reshape(n * n, n * n)  # rows: the 2D cosines
    p = n - 1

    def windows(a):
        padded = torch.nn.functional.pad(a[None, None], (p, p, p, p), mode="reflect")
        return torch.nn.functional.unfold(padded, n)[0]  # (n*n, windows)

    Y, P, V = B @ windows(y), B @ windows(pilot), (B * B) @ windows(var)
    g = P * P / (P * P + V)
    w = 1 / (g * g * V).sum(0, keepdim=True)
    padded_shape = (y.shape[0] + 2 * p, y.shape[1] + 2 * p)
    fold = torch.nn.functional.fold
    num = fold((B.T @ (g * Y)) * w, padded_shape, n)
    den = fold(w.expand(n * n, -1), padded_shape, n)
    return (num / den)[0, p:-p, p:-p]


def test_it_is_the_windowed_wiener_filter_and_keeps_a_noiseless_image():
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(21, 26, generator=gen, dtype=torch.float64)
    pilot = y + 0.1 * torch.randn(21, 26, generator=gen, dtype=torch.float64)
    var = 0.01 + 0.05 * torch.rand(21, 26, generator=gen, dtype=torch.float64)
    for n in (4, 8):
        torch.testing.assert_close(dct_wiener(y, pilot, var, n), _direct(y, pilot, var, n))
    # no noise: every gain is 1 and the windows put the image back together
    torch.testing.assert_close(dct_wiener(y, pilot, 0.0, 8), y)
    # a pilot with no signal: every gain is 0
    assert float(dct_wiener(y, torch.zeros_like(y), var, 8).abs().max()) < 1e-12


def test_it_improves_on_a_rough_pilot_of_photon_counts():
    """Real use: Poisson counts, the pilot a Gaussian smoothing of them. The filter keeps the
    measurement's own detail where the pilot says there is signal: better than the pilot and
    the counts."""
    clean = nuclei_images(1, shape=(96, 96), seed=3)[0].astype(np.float64)
    counts = np.random.default_rng(3).poisson(20 * clean).astype(np.float32)
    pilot = ndimage.gaussian_filter(counts, 2.0).astype(np.float32)
    y, p = torch.from_numpy(counts), torch.from_numpy(pilot)
    out = dct_wiener(y, p, p.clamp_min(0) + 1e-3)
    assert out.dtype == torch.float32 and out.shape == y.shape

    def score(image):
        return psnr(clean, np.asarray(image) / 20, 1.0)

    assert score(out) > score(pilot) + 1 and score(out) > score(counts) + 5


def test_bad_input_is_refused_with_a_sentence():
    y = torch.zeros(32, 32)
    with pytest.raises(ValueError, match="2D images of one shape"):
        dct_wiener(y, torch.zeros(32, 31), 1.0)
    with pytest.raises(ValueError, match="2D images of one shape"):
        dct_wiener(torch.zeros(2, 32, 32), torch.zeros(2, 32, 32), 1.0)
    with pytest.raises(ValueError, match="window must be from 2"):
        dct_wiener(y, y, 1.0, window=40)
