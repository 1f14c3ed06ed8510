"""Score-based (diffusion) priors: a noise-conditional denoiser ``D(x, sigma)``.

A diffusion model learns the score of its image distribution at every noise level,
``grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2`` (Tweedie), by denoising score matching:
``D`` is trained to remove Gaussian noise of any std ``sigma`` from training images. Sampling
runs the denoiser from pure noise down to sigma -> 0 (:meth:`ScoreUNet.sample`); reconstruction
(method ``"score"``) runs the same annealing with each step pulled back to the measurements.

:class:`ScoreUNet` is fully convolutional: trained on patches, it denoises images of any size
(its ``image_shape`` is the training patch). It uses the preconditioning of Karras et al.
(EDM, 2022): ``D(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, log s)``, so that the network's
input and target have unit variance at every noise level.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ._write import save_prior

#: The std of the training images (in [0, 1]) that the preconditioning assumes.
SIGMA_DATA = 0.3


def is_score_prior(prior: Any) -> bool:
    """Whether ``prior`` is a score (diffusion) prior, which only method ``score`` uses."""
    return getattr(prior, "architecture", None) == ScoreUNet.architecture


def _noisy_training(prior: Any) -> dict[str, Any]:
    """The card's record of the noisy measurements a prior learned from ({}: none)."""
    return getattr(prior, "card", {}).get("noisy_training") or {}


def noise_floor(prior: Any) -> float | None:
    """The rms noise level of the measurements a score prior learned from (None: trained on
    clean images): below it the prior has never seen an image, so ``score`` anneals to it."""
    noisy = _noisy_training(prior)
    return None if not noisy else float(noisy["sigma"])


def learned_through(prior: Any) -> dict[str, Any] | None:
    """The blur a score prior learned its measurements through (its ``kind`` and parameters,
    without a shape), or None: a prior of the images themselves. Such a prior knows the images
    as the microscope records them, blurred: ``score`` denoises a measurement under it and then
    deconvolves it (:mod:`napari_genprior.solvers.score`)."""
    through = _noisy_training(prior).get("through")
    return None if not through else dict(through)


def same_blur(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two operator specs (``Operator.spec()``, with or without shape and border)
    describe the same blur: the same kind and PSF parameters."""

    def psf(spec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in spec.items() if k not in ("shape", "boundary")}

    pa, pb = psf(a), psf(b)
    if set(pa) != set(pb) or pa.get("kind") != pb.get("kind"):
        return False
    if "sigma" in pa:
        sa, sb = list(pa["sigma"]), list(pb["sigma"])
        return len(sa) == len(sb) and all(abs(float(u) - float(v)) <= 1e-6 for u, v in zip(sa, sb))
    return pa == pb


def training_scale(prior: Any) -> float | None:
    """The photoelectrons at the 99.9th percentile of the photon counts a score prior learned
    from, which it took as 1 (None: not recorded, or not photon counts of a known camera)."""
    scale = _noisy_training(prior).get("scale")
    return None if scale is None else float(scale)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, convs: int = 2):
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.SiLU()]
        super().__init__(*layers)


class ScoreUNet(nn.Module):
    """A noise-conditional denoiser (the score model of a diffusion prior) for 2D images.

    A U-Net of ``levels`` scales (``channels * 2**l`` features at scale ``l``); the noise level
    enters as a constant input channel ``log(sigma) / 4``. ``forward(x, sigma)`` takes images
    ``(B, H, W)`` in the prior's units (``[0, 1]``) and a std (float or ``(B,)`` tensor) and
    returns the denoised images; H and W need not be multiples of ``2**levels``.
    """

    architecture: ClassVar[str] = "score-unet"
    #: Score priors have no latent space: the latent methods refuse them by this.
    latent_dim = None

    def __init__(
        self,
        image_shape: tuple[int, ...] = (64, 64),
        channels: int = 32,
        levels: int = 2,
        sigma_min: float = 0.002,
        sigma_max: float = 1.0,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        channels, levels = int(channels), int(levels)
        if len(self.image_shape) != 2 or min(self.image_shape) < 1:
            raise ValueError(f"a score prior needs a 2D image shape, got {image_shape!r}.")
        if channels < 1 or not 1 <= levels <= 5:
            raise ValueError(
                f"a score prior needs channels >= 1 and 1 <= levels <= 5, got {channels}, {levels}."
            )
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
        self.levels = levels
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        widths = [channels * 2**i for i in range(levels + 1)]
        self.inp = _Block(2, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), nn.SiLU())
            for i in range(levels)
        )
        self.enc = nn.ModuleList(_Block(widths[i + 1], widths[i + 1], 1) for i in range(levels))
        self.mid = _Block(widths[-1], widths[-1])
        self.up = nn.ModuleList(
            nn.Conv2d(widths[i + 1], widths[i], 3, padding=1) for i in range(levels)
        )
        self.dec = nn.ModuleList(_Block(widths[i], widths[i], 1) for i in range(levels))
        self.out = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.config = {
            "image_shape": list(self.image_shape),
            "channels": channels,
            "levels": levels,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
        }
        self.card: dict[str, Any] = {
            "architecture": self.architecture,
            "config": self.config,
            "latent_dim": None,
            "image_shape": list(self.image_shape),
            "normalisation": {"kind": "minmax", "low": 0.0, "high": 1.0, "per_image": True},
            "data": "untrained",
        }

    def _net(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        B, H, W = x.shape
        pad_h, pad_w = (-H) % 2**self.levels, (-W) % 2**self.levels
        h = torch.stack([x, c_noise.expand(B, H, W)], 1)
        if pad_h or pad_w:
            h = nn.functional.pad(h, (0, pad_w, 0, pad_h), mode="replicate")
        h = self.inp(h)
        skips = []
        for down, enc in zip(self.down, self.enc):
            skips.append(h)
            h = enc(down(h))
        h = self.mid(h)
        for i in reversed(range(self.levels)):
            skip = skips[i]
            h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = self.dec[i](self.up[i](h) + skip)
        return self.out(h)[:, 0, :H, :W]

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (``(B, H, W)``) that carries Gaussian noise of std ``sigma``: one
        number, one per image ``(B,)``, or a map per pixel ``(B, H, W)`` (noise whose level
        varies over the image, as photon counts' does; the network sees the map)."""
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if s.ndim != x.ndim:
            s = s.reshape(-1).expand(x.shape[0]).reshape(-1, 1, 1)
        var = s * s + SIGMA_DATA**2
        c_skip = SIGMA_DATA**2 / var
        c_out = s * SIGMA_DATA / var.sqrt()
        c_in = 1 / var.sqrt()
        return c_skip * x + c_out * self._net(c_in * x, s.log() / 4)

    def sigmas(self, steps: int, sigma_max: float | None = None, sigma_min: float | None = None):
        """``steps`` noise levels from ``sigma_max`` down to ``sigma_min``, geometric."""
        hi = self.sigma_max if sigma_max is None else float(sigma_max)
        lo = self.sigma_min if sigma_min is None else float(sigma_min)
        if steps == 1:
            return [hi]
        return [hi * (lo / hi) ** (i / (steps - 1)) for i in range(steps)]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, int] | None = None,
        steps: int = 40,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` images drawn from the prior by a deterministic probability-flow ODE (Euler)."""
        shape = tuple(shape or self.image_shape)
        dev = next(self.parameters()).device
        sig = self.sigmas(steps) + [0.0]
        x = torch.randn((n, *shape), generator=generator).to(dev) * sig[0] + 0.5
        for s, s_next in zip(sig[:-1], sig[1:]):
            d = (x - self(x, s)) / s
            x = x + (s_next - s) * d
        return x

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising score matching on ``(B, H, W)`` clean images: noise levels drawn
        log-uniformly in ``[sigma_min, sigma_max]``, EDM's weighting (unit-variance targets)."""
        B = images.shape[0]
        u = torch.rand(B, generator=generator).to(images.device)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        s = (lo + u * (hi - lo)).exp()
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        den = self(images + s.reshape(-1, 1, 1) * noise, s)
        w = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
        return (w.reshape(-1, 1, 1) * (den - images) ** 2).mean()

    def save(self, path) -> None:
        """Write safetensors weights with the card embedded, plus a ``.json`` card beside them."""
        save_prior(self, path)
