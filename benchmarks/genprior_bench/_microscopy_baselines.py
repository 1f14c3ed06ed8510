"""The classical baselines of ``microscopy``, with settings chosen by Poisson data thinning.

scikit-image's ``richardson_lucy`` (:func:`richardson_lucy_thinned`), ``denoise_tv_chambolle``
(:func:`tv_chambolle_thinned`), ``denoise_wavelet`` on the Anscombe transform
(:func:`wavelet_anscombe`) and ``inpaint_biharmonic``, plus Richardson-Lucy made exact at the
zero boundary of the ``blur`` operator (:func:`richardson_lucy_normalised`); :func:`baseline`
runs one by name. ``real_nuclei`` uses them too.

Poisson data thinning (Leiner, Duan, Wasserman, Ramdas 2023): the photon counts ``c`` are split
binomially into two independent Poisson halves ``c1 + c2``; a method runs on ``c1`` with each
candidate setting and the setting whose estimate best predicts ``c2`` (lowest Poisson deviance)
is chosen (:func:`thinned_choice`). It uses the measurement and the photon scale (counts per
image unit, the camera gain a microscopist calibrates) only, never the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Not scikit-image: Richardson-Lucy made exact at the zero boundary of the ``blur`` operator
#: (:func:`richardson_lucy_normalised`), the fair classical baseline of deconvolution.
RL_NORMALISED = "RL boundary-normalised"
#: Candidate Richardson-Lucy iteration counts.
RL_ITERATIONS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100)

# -- Poisson data thinning ----------------------------------------------------------------


def poisson_deviance(counts: np.ndarray, mu: np.ndarray) -> float:
    """The Poisson deviance ``2 sum(c log(c / mu) - (c - mu))`` of counts under means ``mu``."""
    mu = np.maximum(mu, 1e-9)
    pos = counts > 0
    return 2 * float(
        np.sum(np.where(pos, counts * np.log(np.where(pos, counts, 1) / mu), 0) - (counts - mu))
    )


def thinned_choice(
    y: np.ndarray,
    gain: float,
    candidates: Sequence[Any],
    estimate: Callable[[np.ndarray, Any], np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray],
    seed: int = 0,
) -> int:
    """Which of ``candidates`` Poisson data thinning chooses (its index).

    Parameters
    ----------
    y : ndarray
        The measurement in image units: ``gain`` times Poisson counts.
    gain : float
        Image units per photon count.
    candidates : sequence
        Settings of the method (iteration counts, weights).
    estimate : callable
        ``estimate(y_half, candidate) -> image``: the method on half the counts (given in the
        units of ``y``, i.e. ``2 gain c1``).
    predict : callable
        ``predict(image) -> expected measurement`` (the forward model, in image units).
    seed : int
        Seed of the binomial split.

    Returns
    -------
    int
        The index of the candidate whose estimate from ``c1`` best predicts ``c2``.
    """
    rng = np.random.default_rng(seed)
    counts = np.round(np.clip(y, 0, None) / gain).astype(np.int64)
    c1 = rng.binomial(counts, 0.5)
    c2 = counts - c1
    y1 = c1 * 2.0 * gain
    scores_ = [
        poisson_deviance(c2, np.maximum(predict(estimate(y1, c)), 0) / gain / 2) for c in candidates
    ]
    return int(np.argmin(scores_))


def richardson_lucy_normalised(y: np.ndarray, psf: np.ndarray, num_iter: int) -> np.ndarray:
    """Richardson-Lucy for a blur with a zero boundary: ``x <- x A^T(y / A x) / A^T 1``.

    ``A`` is the convolution with ``psf`` that keeps the image's size and treats the outside
    as zero (the ``blur`` operator's default boundary): near the border part of the light
    falls outside the image, so ``A^T 1 < 1`` there. scikit-image's ``richardson_lucy`` leaves
    out the division by ``A^T 1``, which is exact only for a periodic or infinite image; with
    it, each iteration is the textbook EM step for Poisson data. Starts from the constant
    ``mean(y)``.
    """
    from scipy.signal import fftconvolve

    y = np.clip(y, 0, None)
    flip = psf[::-1, ::-1]
    norm = np.maximum(fftconvolve(np.ones_like(y), flip, mode="same"), 1e-12)
    x = np.full_like(y, max(float(y.mean()), 1e-12))
    for _ in range(num_iter):
        ratio = y / np.maximum(fftconvolve(x, psf, mode="same"), 1e-12)
        x = x * fftconvolve(ratio, flip, mode="same") / norm
    return x


def richardson_lucy_thinned(
    y: np.ndarray, psf: np.ndarray, photons: float, peak: float, *, normalised: bool = False
) -> tuple[int, np.ndarray]:
    """Richardson-Lucy with the iteration count chosen by Poisson thinning.

    The count ``k`` of :data:`RL_ITERATIONS` whose Richardson-Lucy estimate from one binomial
    half of the counts best predicts the other half (:func:`thinned_choice`) is chosen; then RL
    runs ``k`` iterations on all of ``y``. Only the measurement and the known photon scale are
    used, never the ground truth.

    Parameters
    ----------
    y : ndarray
        The blurred, Poisson-noisy image (``peak`` units are ``photons`` counts).
    psf : ndarray
        The point-spread function.
    photons, peak : float
        ``peak`` image units correspond to ``photons`` expected counts.
    normalised : bool
        False: scikit-image's ``richardson_lucy``; True:
        :func:`richardson_lucy_normalised` (exact at a zero boundary).

    Returns
    -------
    k : int
        The chosen number of iterations.
    image : ndarray
        Richardson-Lucy with ``k`` iterations on ``y``.
    """
    from scipy.signal import fftconvolve
    from skimage.restoration import richardson_lucy

    def rl(data: np.ndarray, k: int) -> np.ndarray:
        if normalised:
            return richardson_lucy_normalised(data, psf, k)
        return richardson_lucy(np.clip(data, 0, None), psf, num_iter=k, clip=False)

    i = thinned_choice(
        y, peak / photons, RL_ITERATIONS, rl, lambda x: fftconvolve(x, psf, mode="same")
    )
    k = RL_ITERATIONS[i]
    return k, rl(y, k)


def tv_chambolle_thinned(y: np.ndarray, photons: float, peak: float) -> tuple[float, np.ndarray]:
    """scikit-image's ``denoise_tv_chambolle`` with its weight chosen by Poisson thinning.

    Candidate weights: 25 from 0.005 to 1 times the 99.9th percentile of ``y`` (log-spaced).
    The weight ``w1`` chosen on one half of the counts (:func:`thinned_choice`) is for data
    whose noise std is sqrt(2) times that of ``y`` (half the counts, scaled by 2); as the ROF
    weight near its optimum grows about linearly with the noise std, ``w1 / sqrt(2)`` is used
    on ``y`` (checked on procedural images of another seed, never on test images).

    Returns
    -------
    weight : float
        The weight used on ``y``.
    image : ndarray
        The denoised image.
    """
    from skimage.restoration import denoise_tv_chambolle

    top = float(np.percentile(y, 99.9)) or 1.0
    weights = top * np.geomspace(0.005, 1.0, 25)
    i = thinned_choice(
        y, peak / photons, weights, lambda y1, w: denoise_tv_chambolle(y1, weight=w), lambda x: x
    )
    w = float(weights[i]) / math.sqrt(2)
    return w, denoise_tv_chambolle(y, weight=w)


def _anscombe(y: np.ndarray, gain: float) -> np.ndarray:
    """Counts ``c = y / gain`` mapped to ``2 sqrt(c + 3/8)`` (noise about N(0, 1))."""
    return 2 * np.sqrt(np.clip(y, 0, None) / gain + 3 / 8)


def _anscombe_inverse(d: np.ndarray, gain: float) -> np.ndarray:
    """The closed-form approximation of the exact unbiased inverse of :func:`_anscombe`
    (Makitalo & Foi 2011), back in ``y``'s units."""
    d = np.maximum(d, 1e-3)
    s = math.sqrt(1.5)
    inv = 0.25 * d**2 + 0.25 * s / d - 11 / 8 / d**2 + 0.625 * s / d**3 - 1 / 8
    return np.clip(inv, 0, None) * gain


def wavelet_anscombe(y: np.ndarray, photons: float, peak: float) -> np.ndarray:
    """BayesShrink wavelet denoising of Poisson data through the Anscombe transform
    (scikit-image's ``denoise_wavelet``, soft thresholds, ``sigma=1``)."""
    from skimage.restoration import denoise_wavelet

    gain = peak / photons
    a = _anscombe(y, gain)
    d = denoise_wavelet(a, sigma=1.0, method="BayesShrink", mode="soft", rescale_sigma=True)
    return _anscombe_inverse(d, gain)


def bm3d_anscombe(y: np.ndarray, photons: float, peak: float) -> np.ndarray:
    """BM3D (pip ``bm3d``, Makinen, Azzari and Foi's reference implementation) on Poisson data
    through the Anscombe transform, at its setting for that case: ``sigma_psd=1`` (the
    transform's unit noise), then the exact unbiased inverse; the strongest classical
    denoiser microscopists use."""
    import bm3d

    gain = peak / photons
    d = bm3d.bm3d(_anscombe(y, gain), sigma_psd=1.0)
    return _anscombe_inverse(np.asarray(d, dtype=np.float64), gain)


def baseline(
    name: str, y: np.ndarray, A: Any, photons: float | None, peak: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the baseline ``name`` on ``y``; returns the image and what it chose.

    ``peak`` (the largest value of the noise-free ``A(x)``) stands for ``photons`` expected
    counts: together they give the photon scale, the camera gain a microscopist calibrates
    (unused by ``inpaint_biharmonic``, whose data are not Poisson counts).
    """
    from skimage.restoration import inpaint_biharmonic

    y64 = y.astype(np.float64)
    if name in ("richardson_lucy", RL_NORMALISED):
        k, im = richardson_lucy_thinned(y64, A.psf, photons, peak, normalised=name == RL_NORMALISED)
        return im, {"iterations": k}
    if name == "denoise_tv_chambolle":
        w, im = tv_chambolle_thinned(y64, photons, peak)
        return im, {"weight": w}
    if name == "denoise_wavelet":
        return wavelet_anscombe(y64, photons, peak), {}
    if name == "bm3d":
        return bm3d_anscombe(y64, photons, peak), {"sigma_psd": 1.0, "transform": "anscombe"}
    if name == "inpaint_biharmonic":
        return inpaint_biharmonic(y64, ~A.mask), {}
    raise ValueError(f"unknown baseline {name!r}")  # pragma: no cover
