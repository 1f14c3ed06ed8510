"""Score priors learned from noisy measurements alone: denoisers trained without a clean image.

A microscopist rarely has clean images of the sample, only noisy (Poisson-Gaussian) ones. Each
measurement is put in the units a solver sees it in (:func:`napari_genprior.reconstruct`):
photoelectrons, ``(y - offset) / gain`` with the camera fitted from the noise
(:func:`~napari_genprior.solvers.camera.estimate_camera`) or given, divided by their 99.9th
percentile. Its noise variance is modelled per pixel as ``alpha * m + beta`` (``m`` the 3x3
local mean): for photon counts, the Poisson variance of the photoelectrons plus the read noise
(exactly what the camera says), else the model fitted to the image's noise
(:func:`~napari_genprior.solvers._sure.noise_model`).

The noise-conditional denoiser ``D(z, s)`` of a score prior
(:class:`~napari_genprior.priors.ScoreUNet`) is trained by Noise2Noise on each measurement split in
two (:func:`~napari_genprior.solvers.camera.split_counts`): its photons are thinned, each kept in
the first part with probability ``p`` (0.5 to 0.9), which gives two independent measurements of the
same clean image. The network denoises the first part (half the batch with Gaussian noise added, up
to ``sigma_max``) and is scored against the second (:func:`split_loss`): the second's noise is
independent and of mean zero, so the loss is the error against the clean image plus a constant,
exactly for photon counts. So the prior knows the clean images from near the measurement's own noise
level upwards, which is what method ``score`` needs (its annealing stops at that level,
:func:`noise_floor`), and the denoiser told the measurement's own noise map denoises it. For photon
counts the card records the photoelectrons its data took as 1 (``scale``): ``score`` denoises a crop
or another plane of the same acquisition in those units, not on the crop's own scale
(:data:`napari_genprior.solvers.score.SAME_LEVEL`).

(Stein's unbiased risk estimate, the first loss tried, is exact only for Gaussian noise: on
photon counts a network learned its bias and its estimated error fell below zero; and SURE on
added Gaussian noise with Noisier2Noise's correction, exact but weak at the measurement's own
noise level, denoised real nuclei 1.9 dB worse than the split, in 8 times its training time.)

Blurred measurements (``operator=`` a 2D blur) are learned the same way, as they are: the prior
knows the images as the microscope records them, and the card's ``through`` names the blur
(:func:`~napari_genprior.priors.score.learned_through`), which ``score`` then deconvolves after
denoising (:mod:`napari_genprior.solvers._score_direct`). Scoring a network's output blurred
against the other part of the split instead left the detail that the blur all but removes free,
and the network kept the noise there.

Progress is scored on patches held out from training (the bottom strip, one patch high, of each
image at least two patches tall, else a tenth of the images) by Gaussian SURE at the
measurement's own noise (:func:`sure`), as a PSNR: the "held-out PSNR" of the loss curve
estimates how far the denoised patches are from the clean ones (for photon counts an
approximation, which the network is not trained on, so cannot exploit).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .priors.score import SIGMA_DATA, ScoreUNet
from .solvers._sure import noise_model, variance_map
from .solvers.camera import SPLIT, check_camera, estimate_camera, split_counts

#: The least noise added in training, as a part of the measurement's own noise std.
MIN_ADDED = 0.3
#: Step of the finite-difference divergence probe (images of unit scale).
PROBE_EPS = 1e-3
#: The largest number of held-out patches scored after each epoch.
HELD_OUT_PATCHES = 64


def to_solver_units(
    image: np.ndarray, camera: Any = "auto"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``image`` in a solver's units, its noise-variance map there, and what was fitted.

    Returns ``(y, v, info)``: ``y`` = photoelectrons over their 99.9th percentile (float32),
    ``v`` the per-pixel noise variance in those units, ``info`` the camera, the scale and the
    noise model ``alpha``, ``beta`` and rms level ``sigma``.
    """
    im = np.asarray(image, dtype=np.float32)
    if camera is None:
        cam = {"offset": 0.0, "gain": 1.0, "read_noise": None, "poisson": False}
    elif isinstance(camera, str) and camera == "auto":
        cam = estimate_camera(im)
    elif isinstance(camera, str):
        raise ValueError(f"camera must be 'auto', None or a dict, got {camera!r}.")
    else:
        cam = estimate_camera(im, check_camera(camera))
    e = (im - float(cam["offset"])) / float(cam["gain"])
    scale = float(np.quantile(e, 0.999))
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(
            "this image has no signal above the camera's offset (its 99.9th percentile is "
            f"{scale:.3g} photoelectrons); nothing can be learned from it."
        )
    y = torch.from_numpy(e / scale)
    if cam["poisson"]:  # photoelectrons: variance = mean + read noise^2, exactly
        alpha, beta = 1 / scale, float(cam["read_noise"] or 0.0) ** 2 / scale**2
    else:  # not photon counts: the variance model fitted to the image's noise
        alpha, beta = noise_model(y, 2)
    v = variance_map(y[None], alpha, beta)[0]
    info = {
        "camera": {k: cam.get(k) for k in ("offset", "gain", "read_noise", "poisson")},
        "scale": scale,
        "alpha": float(alpha),
        "beta": float(beta),
        "sigma": float(v.mean().sqrt()),
    }
    return y.numpy(), v.numpy().astype(np.float32), info


def noisy_sampler(
    images: list[np.ndarray], patch: tuple[int, int], operator: Any, camera: Any, seed: int
) -> tuple[NoisyPatches, dict[str, Any], dict[str, Any]]:
    """The patch sampler, the card's normalisation and its ``noisy_training`` entry for
    training on the noisy measurements ``images`` (2D, already checked)."""
    kind = getattr(operator, "kind", None)
    if operator is not None and kind not in ("denoise", "blur"):
        raise ValueError(
            f"noisy=True learns from measurements of the images themselves (operator None or "
            f"'denoise') or through a 2D blur ('blur'); training through a {kind!r} operator is "
            "not supported: give the noisy images, or reconstruct them first."
        )
    if kind == "blur" and len(operator.shape) != 2:
        raise ValueError(
            f"a score prior learns 2D images; the blur has shape {tuple(operator.shape)}: give "
            "the 2D blur of one plane (make_operator('blur', shape=(H, W), ...))."
        )
    ys, infos = [], []
    for im in images:
        y, _, info = to_solver_units(im, camera)
        ys.append(y)
        infos.append(info)
    sampler = NoisyPatches(ys, [(i["alpha"], i["beta"]) for i in infos], patch, seed)
    norm = {
        "kind": "minmax",
        "low": 0.0,
        "high": 1.0,
        "per_image": True,
        "units": "photoelectrons over their 99.9th percentile",
    }
    sigmas = [i["sigma"] for i in infos]
    noise = {
        "sigma": float(np.median(sigmas)),
        "sigma_range": [float(min(sigmas)), float(max(sigmas))],
        "alpha": float(np.median([i["alpha"] for i in infos])),
        "beta": float(np.median([i["beta"] for i in infos])),
        "camera": infos[0]["camera"] if len(infos) == 1 else "fitted per image",
        "loss": "Noise2Noise on binomially split photon counts (Poisson-Gaussian model from "
        "the camera or the data)",
        "held_out": "separate patches" if sampler.held_out_separate else "training patches",
    }
    if kind == "blur":  # the images as the microscope records them (see learned_through)
        noise["through"] = {k: v for k, v in operator.spec().items() if k != "shape"}
    if all(i["camera"]["poisson"] for i in infos):  # absolute units: photoelectrons
        noise["scale"] = float(np.median([i["scale"] for i in infos]))
    return sampler, norm, noise


class NoisyPatches:
    """Random patches of ``size`` of measurements, flipped and rotated, each with its image's
    noise model (channels: the patch, ``alpha``, ``beta``); patches of the held-out part are
    kept apart for :meth:`held_out`."""

    def __init__(self, ys: list[np.ndarray], models: list[tuple[float, float]], size, seed):
        self.size = size
        self.rng = np.random.default_rng(seed)
        h, w = size
        small = [y.shape for y in ys if y.shape[0] < h or y.shape[1] < w]
        if small:
            raise ValueError(
                f"patch_size {size} is larger than image(s) of shape {small[0]}; "
                "choose a smaller patch_size."
            )
        pairs = [
            np.stack([y, np.full_like(y, a), np.full_like(y, b)]) for y, (a, b) in zip(ys, models)
        ]
        train, held = [], []
        if len(pairs) >= 10:  # a tenth of the images held out
            for i, p in enumerate(pairs):
                (held if i % 10 == 9 else train).append(p)
        else:  # the bottom strip of each image tall enough
            for p in pairs:
                if p.shape[1] >= 2 * h:
                    train.append(p[:, :-h])
                    held.append(p[:, -h:])
                else:
                    train.append(p)
        self.train = train
        tiles = [p[:, :h, c : c + w] for p in held for c in range(0, p.shape[2] - w + 1, w)] or [
            self._crop(p) for p in train for _ in range(4)
        ]
        self.held_out_tiles = np.stack(tiles[:HELD_OUT_PATCHES])
        self.held_out_separate = bool(held)
        weights = np.array([(p.shape[1] - h + 1) * (p.shape[2] - w + 1) for p in train], float)
        self.weights = weights / weights.sum()

    def held_out(self, device: Any) -> torch.Tensor:
        """The held-out patches ``(n, 3, h, w)`` on ``device``."""
        return torch.from_numpy(self.held_out_tiles).to(device)

    def _crop(self, p: np.ndarray) -> np.ndarray:
        h, w = self.size
        r = self.rng.integers(0, p.shape[1] - h + 1)
        c = self.rng.integers(0, p.shape[2] - w + 1)
        return p[:, r : r + h, c : c + w]

    def sample(self, n: int) -> np.ndarray:
        """``(n, 3, h, w)``: measurement patches and their noise models."""
        which = self.rng.choice(len(self.train), n, p=self.weights)
        out = np.stack([self._crop(self.train[i]) for i in which])
        flip = self.rng.random(n) < 0.5
        out[flip] = out[flip][..., ::-1]
        if self.size[0] == self.size[1]:
            k = self.rng.integers(0, 4, n)
            for j in range(1, 4):
                out[k == j] = np.rot90(out[k == j], j, axes=(2, 3))
        return np.ascontiguousarray(out)


def sure(
    G: ScoreUNet,
    y: torch.Tensor,
    model: torch.Tensor,
    added: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per-pixel terms of SURE of ``G``'s error on ``z = y + sqrt(added) n``, where ``y``
    (``(B, H, W)``) carries Gaussian noise of variance ``alpha * m + beta`` (``model``:
    ``(B, 2)`` alphas and betas; ``m`` the mean of a pixel's 8 neighbours, so that neither the
    variance nor the weights depend on the pixel's own noise); their sum estimates
    ``|D(z) - x|^2`` for the clean ``x``. The divergence probe passes through the std map
    ``G`` is told, which depends on the noise too. (For photon counts this is biased, and a
    network trained on it learns to exploit the bias: :func:`split_loss` does not use it; the
    held-out score does, on a network that was not trained on it.)"""
    noise = torch.randn(y.shape, generator=generator).to(y.device)
    probe = torch.randn(y.shape, generator=generator).to(y.device)
    z = y + added.sqrt() * noise
    V = variance_map(y, model[:, 0], model[:, 1], blind=True) + added
    # the input and the probed input in one batch, each told the std map of its own noise
    zz = torch.cat([z, z + PROBE_EPS * probe])
    m2, a2 = model.repeat(2, 1), added.repeat(2, 1, 1)
    both = G(zz, (variance_map(zz, m2[:, 0], m2[:, 1]) + a2).sqrt())
    d, d_probe = both[: len(z)], both[len(z) :]
    return (d - z) ** 2 - V + 2 * V * probe * (d_probe - d) / PROBE_EPS


def added_variance(
    m: torch.Tensor, u: torch.Tensor, share: torch.Tensor, sigma_min: float, sigma_max: float
) -> torch.Tensor:
    """Variance maps of the noise added to a batch: of mean ``s^2`` (``s`` log-uniform in
    ``[sigma_min, sigma_max]`` by ``u``), the ``share`` of it in proportion to the local mean
    ``m`` (as photon noise is, whatever the measurement's own noise), the rest flat."""
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    s = (lo + u * (hi - lo)).exp().reshape(-1, 1, 1)
    mean = m.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    shape = m.clamp_min(0) / mean + 0.01
    share = share.reshape(-1, 1, 1)
    return s * s * (share * shape + 1 - share)


def split_loss(
    G: ScoreUNet, batch: torch.Tensor, generator: torch.Generator, sigma_max: float | None = None
) -> torch.Tensor:
    """The training loss on a batch ``(B, 3, H, W)`` of :meth:`NoisyPatches.sample`:
    Noise2Noise on the two halves of each measurement split by :func:`split_counts`.

    The network sees the first part ``u1`` (the share ``p``, uniform in
    :data:`~napari_genprior.solvers.camera.SPLIT`, of the photons), in half of the batch with
    Gaussian noise of variance ``a`` (:func:`added_variance`, from :data:`MIN_ADDED` of the
    measurement's own noise to ``sigma_max``) added, and is told the std map of its input's noise;
    its estimate is compared with the second part ``u2``. ``u2``'s noise is independent of the
    input's and of mean zero, so the loss is the error against the clean image plus a constant:
    unbiased for photon counts (no Gaussian approximation, which a network learns to exploit: see
    :func:`sure`), and minimised by the clean image's posterior mean at the input's noise. EDM's
    weight at the input's mean noise variance."""
    y, model = batch[:, 0], batch[:, 1:, 0, 0]
    B = len(y)
    lo, hi_p = SPLIT
    p = lo + (hi_p - lo) * torch.rand(B, generator=generator).to(y.device)
    u1, u2 = split_counts(y, model, p, generator)
    own = float(variance_map(y, model[:, 0], model[:, 1], blind=True).mean().sqrt())
    hi = G.sigma_max if sigma_max is None else sigma_max
    u = torch.rand(B, generator=generator).to(y.device)
    share = torch.rand(B, generator=generator).to(y.device)
    added = (torch.rand(B, generator=generator) < 0.5).to(y).reshape(-1, 1, 1)
    m = variance_map(y, 1.0, 0.0, blind=True)  # the local mean (blind: not of a pixel's noise)
    a = added * added_variance(m, u, share, max(G.sigma_min, MIN_ADDED * own), hi)
    z = u1 + a.sqrt() * torch.randn(y.shape, generator=generator).to(y.device)
    V = variance_map(u1, model[:, 0] / p, model[:, 1] / p) + a
    d = G(z, V.sqrt())
    Vm = V.mean(dim=(1, 2), keepdim=True)
    w = (Vm + SIGMA_DATA**2) / (Vm * SIGMA_DATA**2)
    return (w * (d - u2) ** 2).mean()


@torch.no_grad()
def held_out_psnr(G: ScoreUNet, tiles: torch.Tensor, seed: int) -> float:
    """The PSNR (peak 1) of ``G``'s denoising of the held-out tiles at their own noise, as
    Gaussian SURE (:func:`sure`) estimates it (the same probe every time: comparable between
    epochs; for photon counts an approximation)."""
    gen = torch.Generator().manual_seed(seed)
    y, model = tiles[:, 0], tiles[:, 1:, 0, 0]
    est = sure(G, y, model, torch.zeros_like(y), gen)
    return float(-10 * math.log10(max(float(est.mean()), 1e-10)))
