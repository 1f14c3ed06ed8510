"""Fit a generative prior to images: a VAE (default) or a DCGAN, on patches, on any device.

``train_prior(images, ...)`` takes a 2D image, a stack ``(N, H, W)`` or a list of 2D images of
any sizes; it trains on random patches of ``patch_size`` (whole images when they are that size)
with flips and 90-degree rotations, normalised as the card records, and returns the generator
with its card. ``iter_train`` is the same as a generator of :class:`TrainUpdate` (send False to
stop; the model trained so far is returned), which the napari widget runs in a worker thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Generator as Gen
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._drive import drive
from .devices import resolve_device
from .priors import (
    ENCODERS,
    ConvDecoder,
    DCGANGenerator,
    FCDecoder,
    Generator,
    ScoreUNet,
    save_prior,
)

KINDS = ("vae", "gan", "score")
NORMALISATIONS = ("percentile", "global", "none")


@dataclass(frozen=True)
class TrainUpdate:
    """Progress of training: epoch (1-based) of ``total``, mean losses, a few decoded samples."""

    epoch: int
    total: int
    losses: dict[str, float]
    samples: np.ndarray | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _as_image_list(images: Any) -> list[np.ndarray]:
    if (
        isinstance(images, np.ndarray)
        or hasattr(images, "__array__")
        and not isinstance(images, (list, tuple))
    ):
        arr = np.asarray(images)
        if arr.ndim == 2:
            out = [arr]
        elif arr.ndim == 3:
            out = list(arr)
        else:
            raise ValueError(
                f"images must be a 2D image, a (N, H, W) stack or a list of 2D images; "
                f"got an array of shape {arr.shape}."
            )
    elif isinstance(images, (list, tuple)):
        out = [np.asarray(im) for im in images]
    else:
        raise TypeError(
            f"images must be an array or a list of arrays, got {type(images).__name__}."
        )
    if not out:
        raise ValueError("images is empty: there is nothing to train on.")
    for i, im in enumerate(out):
        if im.ndim != 2:
            raise ValueError(f"image {i} has shape {im.shape}; every image must be 2D (grey).")
        if im.dtype == object or np.iscomplexobj(im) or not np.issubdtype(im.dtype, np.number):
            raise TypeError(f"image {i} has dtype {im.dtype}; images must be real numbers.")
        if not np.all(np.isfinite(im)):
            raise ValueError(f"image {i} contains NaN or infinite values.")
    return out


def _normalise(images: list[np.ndarray], how: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    if how == "none":
        return [im.astype(np.float32) for im in images], {
            "kind": "minmax",
            "low": 0.0,
            "high": 1.0,
            "per_image": False,
        }
    if how == "global":
        flat = np.concatenate([im.ravel()[:: max(1, im.size // 100_000)] for im in images])
        low, high = (float(v) for v in np.percentile(flat, [0.1, 99.9]))
        high = high if high > low else low + 1.0
        out = [np.clip((im - low) / (high - low), 0, 1).astype(np.float32) for im in images]
        return out, {"kind": "minmax", "low": low, "high": high, "per_image": False}
    out = []
    for im in images:
        low, high = (float(v) for v in np.percentile(im, [1.0, 99.8]))
        high = high if high > low else low + 1.0
        out.append(np.clip((im - low) / (high - low), 0, 1).astype(np.float32))
    return out, {
        "kind": "minmax",
        "low": 0.0,
        "high": 1.0,
        "per_image": True,
        "percentiles": [1.0, 99.8],
    }


class _Patches:
    """Random patches of ``size`` from a list of images, with flips and 90-degree rotations."""

    def __init__(self, images: list[np.ndarray], size: tuple[int, int], augment: bool, seed: int):
        self.size, self.augment = size, augment
        self.rng = np.random.default_rng(seed)
        small = [im.shape for im in images if im.shape[0] < size[0] or im.shape[1] < size[1]]
        if small:
            raise ValueError(
                f"patch_size {size} is larger than image(s) of shape {small[0]}; "
                "choose a smaller patch_size."
            )
        self.whole = all(im.shape == size for im in images)
        if self.whole:
            self.stack = np.stack(images)
        self.images = images
        self.weights = np.array(
            [(im.shape[0] - size[0] + 1) * (im.shape[1] - size[1] + 1) for im in images],
            dtype=np.float64,
        )
        self.weights /= self.weights.sum()

    def sample(self, n: int) -> np.ndarray:
        if self.whole:
            out = self.stack[self.rng.integers(0, len(self.stack), n)]
        else:
            which = self.rng.choice(len(self.images), n, p=self.weights)
            out = np.empty((n, *self.size), np.float32)
            for i, w in enumerate(which):
                im = self.images[w]
                r = self.rng.integers(0, im.shape[0] - self.size[0] + 1)
                c = self.rng.integers(0, im.shape[1] - self.size[1] + 1)
                out[i] = im[r : r + self.size[0], c : c + self.size[1]]
        if self.augment:
            out = out.copy()
            flip = self.rng.random(n) < 0.5
            out[flip] = out[flip, :, ::-1]
            if self.size[0] == self.size[1]:
                k = self.rng.integers(0, 4, n)
                for j in range(1, 4):
                    out[k == j] = np.rot90(out[k == j], j, axes=(1, 2))
        return np.ascontiguousarray(out)


def _default_architecture(patch: tuple[int, int]) -> str:
    side = patch[0]
    square_pow2 = (
        patch[0] == patch[1] and side >= 16 and 4 * 2 ** round(math.log2(side / 4)) == side
    )
    return "conv-decoder" if square_pow2 and side >= 32 else "fc-decoder"


class _Discriminator(nn.Module):
    def __init__(self, side: int, ndf: int):
        super().__init__()
        layers, cin, s = [], 1, side
        while s > 4:
            layers += [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            cin, ndf, s = ndf, ndf * 2, s // 2
        layers += [nn.Conv2d(cin, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1)).flatten()


def iter_train(
    images: Any,
    kind: str = "vae",
    latent_dim: int = 20,
    epochs: int = 50,
    *,
    patch_size: Any = None,
    patches_per_epoch: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    architecture: str = "auto",
    channels: int = 16,
    hidden: tuple[int, ...] = (500, 500),
    beta: float = 1.0,
    augment: bool | None = None,
    normalise: str = "percentile",
    device: Any = "auto",
    seed: int = 0,
    checkpoint: Any = None,
    data: str | None = None,
    samples_every: int = 1,
) -> Gen[TrainUpdate, bool | None, Generator]:
    """Train a prior step by step; same arguments as :func:`train_prior`. Checks run eagerly."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}.")
    for name, v, low in (
        ("latent_dim", latent_dim, 1),
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
    ims = _as_image_list(images)
    if patch_size is None:
        shapes = {im.shape for im in ims}
        patch = (
            next(iter(shapes)) if len(shapes) == 1 and max(next(iter(shapes))) <= 64 else (64, 64)
        )
    else:
        patch = (
            (int(patch_size), int(patch_size))
            if np.isscalar(patch_size)
            else tuple(int(s) for s in patch_size)
        )
    if len(patch) != 2 or min(patch) < 4:
        raise ValueError(f"patch_size must be an int or (h, w) of at least 4, got {patch_size!r}.")
    arch = (
        "dcgan"
        if kind == "gan"
        else "score-unet"
        if kind == "score"
        else (_default_architecture(patch) if architecture == "auto" else architecture)
    )
    if kind == "vae" and arch not in ENCODERS:
        raise ValueError(
            f"architecture must be 'auto', 'fc-decoder' or 'conv-decoder', got {architecture!r}."
        )
    dev = resolve_device(device)
    ims, norm = _normalise(ims, normalise)
    whole = all(im.shape == patch for im in ims)
    sampler = _Patches(ims, patch, augment if augment is not None else not whole, seed)
    per_epoch = patches_per_epoch or (
        sum(1 for _ in ims)
        if whole
        else int(min(20_000, max(2_000, sum(im.size for im in ims) // (patch[0] * patch[1]) * 4)))
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "fc-decoder":
            G: Generator = FCDecoder(latent_dim, patch, hidden=tuple(hidden))
            enc_cfg = {"latent_dim": latent_dim, "image_shape": list(patch), "hidden": list(hidden)}
        elif arch == "score-unet":  # latent_dim does not apply: a denoiser has no latent
            G = ScoreUNet(patch, channels=channels)
        elif arch == "conv-decoder":
            G = ConvDecoder(latent_dim, patch, channels=channels)
            enc_cfg = {"latent_dim": latent_dim, "image_shape": list(patch), "channels": channels}
        else:
            G = DCGANGenerator(latent_dim, patch, ngf=channels * 2)
            D = _Discriminator(patch[0], channels * 2)
    return _train(
        G,
        D if kind == "gan" else None,
        enc_cfg if kind == "vae" else None,
        sampler,
        kind,
        epochs,
        per_epoch,
        batch_size,
        lr,
        beta,
        dev,
        seed,
        checkpoint,
        norm,
        data,
        samples_every,
        len(ims),
    )


def _train(
    G,
    D,
    enc_cfg,
    sampler,
    kind,
    epochs,
    per_epoch,
    batch_size,
    lr,
    beta,
    dev,
    seed,
    checkpoint,
    norm,
    data,
    samples_every,
    n_images,
):
    torch_gen = torch.Generator(device="cpu").manual_seed(seed)
    G = G.to(dev)
    if kind == "vae":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            encoder = ENCODERS[G.architecture](
                **{**enc_cfg, "image_shape": tuple(enc_cfg["image_shape"])}
            ).to(dev)
        G.encoder = encoder  # saved with the decoder: warm starts and further training
        G.card["encoder"] = enc_cfg
        opt = torch.optim.Adam(G.parameters(), lr=lr or 1e-3)
    elif kind == "score":
        opt = torch.optim.Adam(G.parameters(), lr=lr or 1e-3)
        # cosine decay over the whole run: the denoiser's last steps refine the small noise levels
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, max(1, epochs * max(1, per_epoch // batch_size)), eta_min=1e-5
        )
    else:
        D = D.to(dev)
        opt = torch.optim.Adam(G.parameters(), lr=lr or 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr or 2e-4, betas=(0.5, 0.999))
    fixed_z = (
        None if kind == "score" else torch.randn((8, G.latent_dim), generator=torch_gen).to(dev)
    )
    t0 = time.perf_counter()
    cancelled = False
    epoch = 0
    losses: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        G.train()
        sums: dict[str, float] = {}
        n_batches = max(1, per_epoch // batch_size)
        for _ in range(n_batches):
            x = torch.from_numpy(sampler.sample(batch_size)).to(dev)
            if kind == "vae":
                mu, logvar = G.encoder(x)
                z = mu + torch.randn(mu.shape, generator=torch_gen).to(dev) * torch.exp(
                    0.5 * logvar
                )
                out = G(z).clamp(1e-6, 1 - 1e-6)
                rec = nn.functional.binary_cross_entropy(out, x, reduction="sum") / batch_size
                kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch_size
                loss = rec + beta * kl
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                parts = {"loss": loss.item(), "reconstruction": rec.item(), "kl": kl.item()}
            elif kind == "score":
                loss = G.loss(x, torch_gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(G.parameters(), 1.0)  # the first steps can blow up
                opt.step()
                sched.step()
                parts = {"denoising": loss.item()}
            else:
                z = torch.randn((batch_size, G.latent_dim), generator=torch_gen).to(dev)
                fake = G(z)
                bce = nn.functional.binary_cross_entropy_with_logits
                d_real, d_fake = D(x), D(fake.detach())
                loss_d = bce(d_real, torch.ones_like(d_real)) + bce(
                    d_fake, torch.zeros_like(d_fake)
                )
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_fake = D(fake)
                loss_g = bce(d_fake, torch.ones_like(d_fake))
                opt.zero_grad(set_to_none=True)
                loss_g.backward()
                opt.step()
                parts = {"generator": loss_g.item(), "discriminator": loss_d.item()}
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
        losses = {k: v / n_batches for k, v in sums.items()}
        samples = None
        if epoch % samples_every == 0 or epoch == epochs:
            G.eval()
            with torch.no_grad():
                samples = (
                    (
                        G.sample(8, steps=20, generator=torch.Generator().manual_seed(seed))
                        if kind == "score"
                        else G(fixed_z)
                    )
                    .cpu()
                    .numpy()
                )
        G.card.update(
            _card(
                G,
                kind,
                norm,
                data,
                n_images,
                per_epoch,
                epoch,
                losses,
                seed,
                time.perf_counter() - t0,
                cancelled=False,
            )
        )
        if checkpoint is not None:
            save_prior(G, checkpoint)
        reply = yield TrainUpdate(epoch, epochs, losses, samples, time.perf_counter() - t0)
        if reply is False:
            cancelled = True
            break
    G.eval()
    G.card.update(
        _card(
            G,
            kind,
            norm,
            data,
            n_images,
            per_epoch,
            epoch,
            losses,
            seed,
            time.perf_counter() - t0,
            cancelled,
        )
    )
    return G.cpu()


def _card(G, kind, norm, data, n_images, per_epoch, epoch, losses, seed, seconds, cancelled):
    from ._version import __version__

    return {
        "kind": kind,
        "normalisation": norm,
        "data": data or "user images",
        "training": {
            "images": n_images,
            "patches_per_epoch": per_epoch,
            "epochs": epoch,
            "final_losses": losses,
            "seed": seed,
            "seconds": round(seconds, 1),
            "cancelled": cancelled,
            "genprior_version": __version__,
        },
    }


def train_prior(
    images: Any,
    kind: str = "vae",
    latent_dim: int = 20,
    epochs: int = 50,
    *,
    device: Any = "auto",
    seed: int = 0,
    callback: Callable[[int, dict, np.ndarray | None], bool | None] | None = None,
    **options: Any,
) -> Generator:
    """Train a generative prior on images.

    Parameters
    ----------
    images : array or list of arrays
        A 2D image, a stack ``(N, H, W)``, or a list of 2D images of any sizes.
    kind : {"vae", "gan", "score"}
        A VAE (decoder + encoder, the default), a DCGAN (square patches of 4 * 2**k pixels), or
        a score (diffusion) prior: a noise-conditional denoiser trained by denoising score
        matching (:class:`~napari_genprior.priors.ScoreUNet`, for method ``"score"``).
    latent_dim : int
        Size of the latent code z (not used by ``"score"``).
    epochs : int
        Passes over the data (``patches_per_epoch`` random patches each when cropping).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda:N"``, ``"mps"``.
    seed : int
        Seeds weights, patches and noise: the same call gives the same prior on the same device.
    callback : callable, optional
        ``callback(epoch, losses, samples)`` after each epoch (``samples``: 8 decoded images);
        returning False stops and returns the prior trained so far.
    **options
        ``patch_size`` (default: the images' size up to 64, else 64), ``patches_per_epoch``,
        ``batch_size`` (64), ``lr``, ``architecture`` ("auto", "fc-decoder", "conv-decoder"),
        ``channels``, ``hidden``, ``beta`` (KL weight), ``augment`` (flips and rotations;
        default on when cropping patches), ``normalise`` ("percentile": per image 1st-99.8th
        percentiles to [0, 1], recorded as per-image so that reconstruction fits gain and
        offset; "global": one range for all; "none": data already in [0, 1]),
        ``checkpoint`` (a path written after every epoch), ``data`` (a description for the card).

    Returns
    -------
    Generator
        The trained generator (on the CPU) with its card; ``.save(path)`` writes it.
    """
    run = iter_train(images, kind, latent_dim, epochs, device=device, seed=seed, **options)
    if callback is None:
        return drive(run, lambda u: None)
    return drive(run, lambda u: callback(u.epoch, u.losses, u.samples))
