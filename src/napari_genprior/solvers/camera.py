"""The camera between the photons and the numbers in a layer: offset, gain and read noise.

A scientific camera (sCMOS, CCD, EMCCD without its multiplication) records

    y = offset + gain * (Poisson(A x + b) + read noise)        (in ADU, often uint16)

where ``A x + b`` is the expected number of photoelectrons at each pixel (the blurred sample
plus its diffuse background ``b``), ``gain`` converts photoelectrons into ADU, ``offset`` is the
dark level the maker adds so that noise never goes below zero (often 100 ADU), and the read
noise is Gaussian (``read_noise`` electrons rms). The solvers then work in photoelectrons,
``(y - offset) / gain``, where counts are Poisson: ``tv`` weighs each entry by its inverse
noise variance there (+1.0 dB on a real nuclei crop at 200 photons; within 0.1 dB elsewhere),
and Richardson-Lucy takes the read noise as the usual shift of ``read_noise^2`` (Snyder et al.
1993). (Richardson-Lucy on the raw ADU scored the same on a camera crop: a constant offset is
in the range of a blur with an unknown border.) Results go back into the layer's units,
``offset + gain * x``, so they overlay the input with the same contrast limits.

Nothing of this need be known: :func:`estimate_camera` fits the noise's variance as
``alpha * mean + beta`` over the image (:func:`._sure.noise_model`, from the finest Haar
details, which a blur leaves to the noise alone); ``alpha`` is the gain, and the level where the
fitted variance would fall to the read noise is the offset. What the user knows (an offset
from the camera's data sheet or a dark frame, the gain) is taken as given and the rest fitted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..operators.base import check_float
from ._sure import line_fit, noise_bins, variance_map

#: The fitted variance must grow over the image's levels by this part of its mean for the
#: noise to be read as photon counts (with a gain); else the camera is the identity.
POISSON_SHARE = 0.25
#: ...and by this many standard errors of the fitted slope.
POISSON_T = 6.0
#: The keys of a camera dict: ADU at zero light, ADU per photoelectron, electrons rms.
KEYS = ("offset", "gain", "read_noise")


def check_camera(camera: Any) -> dict[str, float | None]:
    """A camera dict with every key present (None: to be estimated), each value checked."""
    if not isinstance(camera, dict):
        raise ValueError(
            "camera must be 'auto', None or a dict with any of "
            f"{list(KEYS)} (offset in ADU, gain in ADU per photoelectron, read_noise in "
            f"electrons rms), got {camera!r:.100}."
        )
    unknown = sorted(set(camera) - set(KEYS) - {"estimated"})
    if unknown:
        raise ValueError(f"camera does not take {unknown}; it takes {list(KEYS)}.")
    out: dict[str, float | None] = {}
    for key in KEYS:
        value = camera.get(key)
        if value is None:
            out[key] = None
        elif key == "gain":
            out[key] = check_float("camera gain", value, low=0, low_open=True)
        elif key == "read_noise":
            out[key] = check_float("camera read_noise", value, low=0)
        else:
            out[key] = check_float("camera offset", value)
    return out


def estimate_camera(y: np.ndarray, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The camera behind the image ``y`` (2D or a 3D stack, in the layer's units), fitted from
    its noise, with whatever ``known`` gives taken as it is.

    Returns ``{"offset", "gain", "read_noise", "poisson", "estimated": [keys fitted]}``. Where
    the noise does not grow with the signal (Gaussian noise alone, or too little of it to
    tell) and no gain is given, the camera is the identity: offset 0, gain 1, the read noise
    the noise's std, and ``poisson`` False (the values are not photon counts).

    Examples
    --------
    A blurred image recorded with 200 photons at its brightest, a background, gain 2 ADU per
    electron, an offset of 100 ADU and 2 electrons of read noise:

    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from skimage import data
    >>> rng = np.random.default_rng(0)
    >>> x = ndimage.gaussian_filter(data.camera() / 255.0, 2)
    >>> y = 100 + 2 * (rng.poisson(200 * x + 10) + rng.normal(0, 2, x.shape))
    >>> cam = estimate_camera(y)
    >>> round(cam["gain"], 1), 85 < cam["offset"] <= 100
    (2.0, True)
    >>> estimate_camera(y, {"offset": 100})["estimated"]
    ['gain', 'read_noise']
    """

    known = check_camera(known or {})
    img = torch.as_tensor(np.asarray(y, dtype=np.float32))
    planes = img.reshape(-1, *img.shape[-2:]) if img.ndim >= 2 else img.reshape(1, 1, -1)
    M, V = noise_bins(planes, 2)
    alpha, beta = line_fit(M, V)
    estimated = [k for k in KEYS if known[k] is None]
    # a Poisson part only where the variance grows with the signal by a good part of itself
    # over the image's range of levels (Gaussian noise alone gives a slope of about 0), and
    # the growth is no accident of the bins' own scatter: each bin's variance, from n
    # detail coefficients, is uncertain by about sqrt(2 / n) of itself (chi-square), which
    # bounds the slope's standard error (a 64x64 tile with Gaussian noise read a "gain" of
    # 5e-5 without this)
    n = max(planes.numel() // 4 // len(M), 1)
    spread = float((M - M.mean()).square().sum())
    se = float(V.mean()) * math.sqrt(2.0 / n) / math.sqrt(spread) if spread > 0 else math.inf
    poisson = (
        alpha > 0
        and alpha * float(M.max() - M.min()) > POISSON_SHARE * float(V.mean())
        and alpha > POISSON_T * se
    )
    if not poisson:
        beta = float(V.mean())
    gain = known["gain"] if known["gain"] is not None else (alpha if poisson else None)
    if gain is None:
        # no Poisson part to read a gain from: the identity camera, Gaussian noise
        off = known["offset"] if known["offset"] is not None else 0.0
        read = known["read_noise"] if known["read_noise"] is not None else math.sqrt(beta)
        return {
            "offset": off,
            "gain": 1.0,
            "read_noise": read,
            "poisson": False,
            "estimated": estimated,
        }
    # the variance beta + alpha * level; at the offset it is the read noise's alone, gain^2 r^2
    if known["offset"] is not None:
        offset = known["offset"]
    else:
        r2 = (known["read_noise"] or 0.0) ** 2 * gain * gain
        offset = (r2 - beta) / max(alpha, 1e-30) if alpha > 0 else 0.0
        # never above the darkest part of the image (a 3x3 mean's 0.1th percentile): the
        # counts there are >= 0, and a too-high offset would make them negative
        smooth = torch.nn.functional.avg_pool2d(planes[:, None], 3, 1, 1, count_include_pad=False)
        floor = float(torch.quantile(smooth.flatten()[:: max(1, smooth.numel() // 2**20)], 1e-3))
        offset = min(offset, floor) if math.isfinite(offset) else floor
    if known["read_noise"] is not None:
        read = known["read_noise"]
    else:
        read = math.sqrt(max(beta + alpha * offset, 0.0)) / gain
    return {
        "offset": float(offset),
        "gain": float(gain),
        "read_noise": float(read),
        "poisson": True,
        "estimated": estimated,
    }


def noise_precision(y: np.ndarray, cam: dict[str, Any]) -> np.ndarray:
    """Inverse noise variance per entry of ``y`` (photoelectrons) under the camera ``cam``:
    Poisson counts at the 3x3 local mean plus the read noise, normalised to mean 1 (the entry
    weights of the least-squares fits, ``Problem.precision``)."""
    from scipy.ndimage import uniform_filter

    size = [1] * (y.ndim - 2) + [3, 3] if y.ndim >= 2 else 3
    level = np.clip(uniform_filter(y.astype(np.float64), size=size, mode="reflect"), 0, None)
    var = level + cam["read_noise"] ** 2
    var = np.maximum(var, 0.05 * max(float(var.mean()), 1e-12))  # dark entries: not infinite
    w = 1.0 / var
    return (w / w.mean()).astype(np.float32)


#: The share of the photons kept in a denoiser's input when a measurement is split in two to
#: train it (:func:`napari_genprior._noisy_training.split_loss`).
SPLIT = (0.5, 0.9)
#: Counts above this are split by the normal approximation of the binomial.
NORMAL_COUNTS = 100.0
#: The least variance (counts) of a negative count split as Gaussian noise.
MIN_COUNT_VAR = 0.5


def split_counts(
    y: torch.Tensor, model: torch.Tensor, p: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent measurements of the same clean image from one, ``y`` ``(B, H, W)``
    with noise variance ``alpha * x + beta`` (``model``: ``(B, 2)``), keeping the share ``p``
    ``(B,)`` of its photons in the first; both rescaled to the units of ``y`` (each unbiased
    for the clean ``x``, of variance ``(alpha x + beta) / p`` and ``/ (1 - p)``).

    ``y / alpha + beta / alpha^2`` are Poisson counts whose variance is their mean (the read
    noise approximated by Poisson counts of its variance, as the generalised Anscombe transform
    does). Thinning them (a binomial draw of each photon with probability ``p``) gives two
    independent Poisson measurements (Krull et al. 2023, "GAP"; for Gaussian noise the same
    split is Recorrupted-to-Recorrupted, Pang et al. 2021). Counts are rounded stochastically
    (unbiased) and, above :data:`NORMAL_COUNTS`, thinned by the normal approximation; below
    zero (read noise in the dark) they are split by it too, with their 8 neighbours' mean count
    as variance (clamped to zero they biased both parts upwards; a Gaussian split of every
    count, with that variance, denoised real nuclei at 5 photons 4 dB worse than thinning)."""
    alpha = model[:, 0].clamp_min(1e-3 * model[:, 1].sqrt()).clamp_min(1e-8).reshape(-1, 1, 1)
    shift = model[:, 1].reshape(-1, 1, 1) / alpha**2
    p = p.reshape(-1, 1, 1).to(y)
    k = y / alpha + shift
    # negative counts cannot be thinned (clamping them to 0 biased the dark background of real
    # nuclei upwards by 0.013 of the peak at 5 photons, 1 e- read noise: 0.8 dB)
    normal = (k > NORMAL_COUNTS) | (k < 0)
    var = torch.where(k > 0, k, variance_map(k, 1.0, 0.0, blind=True).clamp_min(MIN_COUNT_VAR))
    few = torch.where(normal, torch.zeros_like(k), k)
    few = few.floor() + (torch.rand(k.shape, generator=generator).to(k) < few.frac()).to(k)
    # drawn on the generator's device (the CPU), as every draw of the training loop is
    probs = p.expand_as(few).contiguous().cpu()
    thinned = torch.binomial(few.cpu(), probs, generator=generator).to(k)
    noise = torch.randn(k.shape, generator=generator).to(k)
    k1 = torch.where(normal, p * k + (p * (1 - p) * var).sqrt() * noise, thinned)
    k = torch.where(normal, k, few)
    return (k1 / p - shift) * alpha, ((k - k1) / (1 - p) - shift) * alpha
