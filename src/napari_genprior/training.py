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
from ._noisy_training import held_out_psnr, noisy_sampler, split_loss
from ._training_data import NORMALISATIONS, Patches, as_image_list
from ._training_data import normalise as normalise_images
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


@dataclass(frozen=True)
class TrainUpdate:
    """Progress of training: epoch (1-based) of ``total``, mean losses, a few decoded samples."""

    epoch: int
    total: int
    losses: dict[str, float]
    samples: np.ndarray | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


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
    noisy: bool = False,
    operator: Any = None,
    camera: Any = "auto",
) -> Gen[TrainUpdate, bool | None, Generator]:
    """Train a prior step by step; same arguments as :func:`train_prior`. Checks run eagerly."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if noisy and kind != "score":
        raise ValueError(
            f"noisy=True learns a score prior from noisy measurements; use kind='score' "
            f"(a {kind} prior would learn the noise as part of the images)."
        )
    if operator is not None and not noisy:
        raise ValueError("operator= names what made noisy measurements; it needs noisy=True.")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}.")
    for name, v, low in (
        ("latent_dim", latent_dim, 1),
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
    ims = as_image_list(images)
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
    if noisy:
        sampler, norm, noise = noisy_sampler(ims, patch, operator, camera, seed)
        whole = False
    else:
        ims, norm = normalise_images(ims, normalise)
        whole = all(im.shape == patch for im in ims)
        sampler = Patches(ims, patch, augment if augment is not None else not whole, seed)
        noise = None
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
        noise,
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
    noise,
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
                loss = G.loss(x, torch_gen) if noise is None else split_loss(G, x, torch_gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(G.parameters(), 1.0)  # the first steps can blow up
                opt.step()
                sched.step()
                parts = {"denoising" if noise is None else "split loss": loss.item()}
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
        if noise is not None:  # the held-out patches' error, as SURE estimates it
            losses["held-out PSNR"] = held_out_psnr(G, sampler.held_out(dev), seed)
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
                noise=noise,
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
            noise=noise,
        )
    )
    return G.cpu()


def _card(G, kind, norm, data, n_images, per_epoch, epoch, losses, seed, seconds, cancelled, noise):
    from ._version import __version__

    extra = {} if noise is None else {"noisy_training": noise}
    return {
        **extra,
        "kind": kind,
        "normalisation": norm,
        "data": data or ("user images" if noise is None else "user's noisy measurements"),
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
        ``noisy=True`` (with ``kind="score"``): the images are noisy measurements and no clean
        image exists; the prior is learned from them alone, each split in two (Noise2Noise)
        (:mod:`napari_genprior._noisy_training`), with ``camera`` ("auto": fitted to each image;
        a dict as :func:`napari_genprior.reconstruct` takes; None: no camera, the noise model
        fitted) and ``operator`` (None or ``"denoise"``: the measurements are the images
        themselves; a 2D ``"blur"``: they are blurred, and the prior learns them as recorded,
        which ``score`` then denoises and deconvolves by that blur). Images go into the units a
        solver uses (photoelectrons over their 99.9th percentile; ``normalise`` does not apply);
        patches of a held-out part score progress as ``losses["held-out PSNR"]``; the card's
        ``noisy_training`` records the noise.

    Returns
    -------
    Generator
        The trained generator (on the CPU) with its card; ``.save(path)`` writes it.
    """
    run = iter_train(images, kind, latent_dim, epochs, device=device, seed=seed, **options)
    if callback is None:
        return drive(run, lambda u: None)
    return drive(run, lambda u: callback(u.epoch, u.losses, u.samples))
